#include "SAvatarBridgeSourcePanel.h"

#include "Async/Async.h"
#include "Widgets/Input/SButton.h"
#include "Widgets/Input/SCheckBox.h"
#include "Widgets/Input/SEditableTextBox.h"
#include "Widgets/Input/SSpinBox.h"
#include "Widgets/Layout/SBox.h"
#include "Widgets/Layout/SGridPanel.h"
#include "Widgets/Text/STextBlock.h"

#include "avatarbridge/BridgeClient.h"

#include <chrono>

#define LOCTEXT_NAMESPACE "SAvatarBridgeSourcePanel"

void SAvatarBridgeSourcePanel::Construct(const FArguments& InArgs)
{
	OnSourceCreated = InArgs._OnSourceCreated;
	auto Label = [](const FText& Text) { return SNew(STextBlock).Text(Text); };

	ChildSlot
	[
		SNew(SBox).MinDesiredWidth(360.f).Padding(6.f)
		[
			SNew(SGridPanel).FillColumn(1, 1.f)
			+ SGridPanel::Slot(0, 0).Padding(3.f)[Label(LOCTEXT("Server", "Server (host:port)"))]
			+ SGridPanel::Slot(1, 0).Padding(3.f)
			[
				SNew(SEditableTextBox)
				.Text_Lambda([this] { return FText::FromString(ServerAddress); })
				.OnTextChanged_Lambda([this](const FText& T) { ServerAddress = T.ToString().TrimStartAndEnd(); })
			]
			+ SGridPanel::Slot(0, 1).Padding(3.f)[Label(LOCTEXT("Fps", "Frames per second (30 / 60)"))]
			+ SGridPanel::Slot(1, 1).Padding(3.f)
			[
				SNew(SSpinBox<int32>).MinValue(30).MaxValue(60).Delta(30)
				.Value_Lambda([this] { return Defaults.Fps; })
				.OnValueChanged_Lambda([this](int32 V) { Defaults.Fps = V < 45 ? 30 : 60; })
			]
			+ SGridPanel::Slot(0, 2).Padding(3.f)[Label(LOCTEXT("Jitter", "Jitter budget (ms)"))]
			+ SGridPanel::Slot(1, 2).Padding(3.f)
			[
				SNew(SSpinBox<float>).MinValue(0.f).MaxValue(2000.f)
				.Value_Lambda([this] { return Defaults.JitterBufferMs; })
				.OnValueChanged_Lambda([this](float V) { Defaults.JitterBufferMs = V; })
			]
			+ SGridPanel::Slot(0, 3).Padding(3.f)[Label(LOCTEXT("Role", "Bones too (Animation role)"))]
			+ SGridPanel::Slot(1, 3).Padding(3.f)
			[
				SNew(SCheckBox)
				.IsChecked_Lambda([this] { return Defaults.Role == EAvatarBridgeRole::Animation ? ECheckBoxState::Checked : ECheckBoxState::Unchecked; })
				.OnCheckStateChanged_Lambda([this](ECheckBoxState S)
				{
					Defaults.Role = S == ECheckBoxState::Checked ? EAvatarBridgeRole::Animation : EAvatarBridgeRole::Basic;
				})
			]
			+ SGridPanel::Slot(0, 4).ColumnSpan(2).Padding(3.f)
			[
				SNew(STextBlock).AutoWrapText(true).Text(this, &SAvatarBridgeSourcePanel::GetStatusText)
			]
			+ SGridPanel::Slot(0, 5).Padding(3.f)
			[
				SNew(SButton).Text(LOCTEXT("Test", "Test connection"))
				.IsEnabled_Lambda([this] { FScopeLock L(&Status->Lock); return !Status->bBusy; })
				.OnClicked(this, &SAvatarBridgeSourcePanel::OnTestConnection)
			]
			+ SGridPanel::Slot(1, 5).Padding(3.f).HAlign(HAlign_Right)
			[
				SNew(SButton).Text(LOCTEXT("Add", "Add"))
				.IsEnabled_Lambda([this] { return ServerAddress.Contains(TEXT(":")); })
				.OnClicked(this, &SAvatarBridgeSourcePanel::OnAdd)
			]
		]
	];
}

FText SAvatarBridgeSourcePanel::GetStatusText() const
{
	FScopeLock L(&Status->Lock);
	return FText::FromString(Status->Text);
}

FReply SAvatarBridgeSourcePanel::OnTestConnection()
{
	{
		FScopeLock L(&Status->Lock);
		Status->bBusy = true;
		Status->Text = FString::Printf(TEXT("Asking %s ..."), *ServerAddress);
	}
	const std::string Target = TCHAR_TO_UTF8(*ServerAddress);
	TSharedRef<FStatus> Shared = Status;  // outlives the panel if it closes first
	Async(EAsyncExecution::ThreadPool, [Target, Shared]
	{
		avatarbridge::BridgeClient Client(Target);
		avatarbridge::CapabilitiesInfo Caps;
		const avatarbridge::CallStatus Result = Client.GetCapabilities(&Caps, std::chrono::milliseconds(3000));
		FString Text;
		if (Result.ok())
		{
			Text = FString::Printf(TEXT("OK: server %s, %s, engine %s (look-ahead %.0f ms), %d curves"),
				UTF8_TO_TCHAR(Caps.server_version.c_str()), UTF8_TO_TCHAR(Caps.api_version.c_str()),
				UTF8_TO_TCHAR(Caps.default_engine.c_str()), Caps.default_lookahead_ms, static_cast<int32>(Caps.blendshape_names.size()));
		}
		else
		{
			Text = FString::Printf(TEXT("No answer from %s: %s. Is `avatar-bridge serve` running there, and is the port open?"),
				UTF8_TO_TCHAR(Target.c_str()), UTF8_TO_TCHAR(Result.ToString().c_str()));
		}
		FScopeLock L(&Shared->Lock);
		Shared->Text = Text;
		Shared->bBusy = false;
	});
	return FReply::Handled();
}

FReply SAvatarBridgeSourcePanel::OnAdd()
{
	OnSourceCreated.ExecuteIfBound(ServerAddress, Defaults);
	return FReply::Handled();
}

#undef LOCTEXT_NAMESPACE

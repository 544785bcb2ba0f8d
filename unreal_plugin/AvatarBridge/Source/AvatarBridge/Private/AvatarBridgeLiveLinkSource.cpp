#include "AvatarBridgeLiveLinkSource.h"

#include "AvatarBridgeModule.h"
#include "AvatarBridgeSecurity.h"
#include "AvatarBridgeServerProbe.h"
#include "AvatarBridgeSourceSettings.h"
#include "AvatarBridgeStream.h"
#include "ILiveLinkClient.h"

#define LOCTEXT_NAMESPACE "AvatarBridgeLiveLinkSource"

FAvatarBridgeLiveLinkSource::FAvatarBridgeLiveLinkSource(const FString& InServerAddress,
	const FAvatarBridgeStreamSettings& InDefaultStream, const FAvatarBridgeSecurity& InSecurity)
	: ServerAddress(InServerAddress), Security(InSecurity), DefaultStream(InDefaultStream)
{
	Reconnect();
}

void FAvatarBridgeLiveLinkSource::Reconnect()
{
	avatarbridge::ClientOptions Options;
	SecurityError.Reset();
	if (!AvatarBridgeClientOptions(Security, Options, SecurityError))
	{
		UE_LOG(LogAvatarBridge, Error, TEXT("Avatar Bridge source %s: %s"), *ServerAddress, *SecurityError);
		Probe.Reset();
		return;
	}
	Probe = MakeUnique<FAvatarBridgeServerProbe>(ServerAddress, Options);
}

FAvatarBridgeLiveLinkSource::~FAvatarBridgeLiveLinkSource()
{
	RequestSourceShutdown();
}

void FAvatarBridgeLiveLinkSource::ReceiveClient(ILiveLinkClient* InClient, FGuid InSourceGuid)
{
	Client = InClient;
	SourceGuid = InSourceGuid;
	FAvatarBridgeModule::Get().RegisterSource(AsShared());
}

void FAvatarBridgeLiveLinkSource::InitializeSettings(ULiveLinkSourceSettings* Settings)
{
	if (UAvatarBridgeSourceSettings* Ours = Cast<UAvatarBridgeSourceSettings>(Settings))
	{
		Ours->ServerAddress = ServerAddress;
		Ours->Security = Security;
		Ours->DefaultStream = DefaultStream;
	}
}

void FAvatarBridgeLiveLinkSource::Update()
{
	// Streams publish from their owners' ticks (on the audio clock); drop the ones that ended.
	FScopeLock Lock(&StreamsLock);
	Streams.RemoveAll([](const TSharedPtr<FAvatarBridgeStream>& S)
	{
		return S->GetStatus() == EAvatarBridgeStatus::Failed && S.IsUnique();
	});
}

bool FAvatarBridgeLiveLinkSource::IsSourceStillValid() const
{
	return !bShuttingDown;
}

bool FAvatarBridgeLiveLinkSource::RequestSourceShutdown()
{
	if (bShuttingDown)
	{
		return true;
	}
	bShuttingDown = true;
	TArray<TSharedPtr<FAvatarBridgeStream>> ToStop;
	{
		FScopeLock Lock(&StreamsLock);
		ToStop = MoveTemp(Streams);
	}
	for (const TSharedPtr<FAvatarBridgeStream>& S : ToStop)
	{
		S->Stop();
	}
	Probe.Reset();
	if (FModuleManager::Get().IsModuleLoaded(TEXT("AvatarBridge")))
	{
		FAvatarBridgeModule::Get().UnregisterSource(this);
	}
	return true;
}

FText FAvatarBridgeLiveLinkSource::GetSourceType() const
{
	return LOCTEXT("SourceType", "Avatar Bridge");
}

FText FAvatarBridgeLiveLinkSource::GetSourceMachineName() const
{
	return FText::FromString(ServerAddress);
}

FText FAvatarBridgeLiveLinkSource::GetSourceStatus() const
{
	FString Text = !SecurityError.IsEmpty() ? SecurityError : Probe ? Probe->GetStatus() : FString(TEXT("Stopped"));
	FScopeLock Lock(&StreamsLock);
	for (const TSharedPtr<FAvatarBridgeStream>& S : Streams)
	{
		Text += FString::Printf(TEXT(" | %s: %s"), *S->GetSubjectName().ToString(), *S->GetStatusText());
	}
	return FText::FromString(Text);
}

TSubclassOf<ULiveLinkSourceSettings> FAvatarBridgeLiveLinkSource::GetSettingsClass() const
{
	return UAvatarBridgeSourceSettings::StaticClass();
}

void FAvatarBridgeLiveLinkSource::OnSettingsChanged(ULiveLinkSourceSettings* Settings, const FPropertyChangedEvent& PropertyChangedEvent)
{
	ILiveLinkSource::OnSettingsChanged(Settings, PropertyChangedEvent);
	if (const UAvatarBridgeSourceSettings* Ours = Cast<UAvatarBridgeSourceSettings>(Settings))
	{
		DefaultStream = Ours->DefaultStream;  // new streams use it; running ones keep theirs
		if (Ours->ServerAddress != ServerAddress || Ours->Security != Security)
		{
			ServerAddress = Ours->ServerAddress;  // new streams and the status probe go to the new address
			Security = Ours->Security;
			Reconnect();
		}
	}
}

TSharedPtr<FAvatarBridgeStream> FAvatarBridgeLiveLinkSource::OpenStream(FName SubjectName,
	const FAvatarBridgeStreamSettings& Settings, int32 SampleRate, int32 NumChannels, bool bFloat32, double MaxBufferedSeconds)
{
	if (!Client || bShuttingDown)
	{
		UE_LOG(LogAvatarBridge, Error, TEXT("Avatar Bridge source %s has no Live Link client; cannot open %s"),
			*ServerAddress, *SubjectName.ToString());
		return nullptr;
	}
	avatarbridge::ClientOptions Options;
	if (!AvatarBridgeClientOptions(Security, Options, SecurityError))
	{
		UE_LOG(LogAvatarBridge, Error, TEXT("Avatar Bridge source %s: %s; cannot open %s"), *ServerAddress, *SecurityError,
			*SubjectName.ToString());
		return nullptr;
	}
	TSharedPtr<FAvatarBridgeStream> Stream = MakeShared<FAvatarBridgeStream>(Client, SourceGuid, SubjectName, ServerAddress,
		Settings, SampleRate, NumChannels, bFloat32, MaxBufferedSeconds, Options);
	{
		FScopeLock Lock(&StreamsLock);
		for (const TSharedPtr<FAvatarBridgeStream>& Old : Streams)
		{
			if (Old->GetSubjectName() == SubjectName)
			{
				Old->Stop();  // one stream per subject: the new one replaces it
			}
		}
		Streams.RemoveAll([SubjectName](const TSharedPtr<FAvatarBridgeStream>& S) { return S->GetSubjectName() == SubjectName; });
		Streams.Add(Stream);
	}
	Stream->Start();
	return Stream;
}

void FAvatarBridgeLiveLinkSource::CloseStream(const TSharedPtr<FAvatarBridgeStream>& Stream)
{
	if (!Stream.IsValid())
	{
		return;
	}
	Stream->Stop();
	FScopeLock Lock(&StreamsLock);
	Streams.Remove(Stream);
}

#undef LOCTEXT_NAMESPACE

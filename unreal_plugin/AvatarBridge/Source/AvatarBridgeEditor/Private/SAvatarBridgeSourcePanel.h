// The creation panel of the Avatar Bridge Live Link source: server address, default stream
// settings, a connection test with the server's answer, and "Add".
#pragma once

#include "CoreMinimal.h"
#include "Widgets/DeclarativeSyntaxSupport.h"
#include "Widgets/SCompoundWidget.h"
#include "AvatarBridgeTypes.h"

DECLARE_DELEGATE_TwoParams(FOnAvatarBridgeSourceCreated, const FString& /*ServerAddress*/, const FAvatarBridgeStreamSettings& /*Defaults*/);

class SAvatarBridgeSourcePanel : public SCompoundWidget
{
public:
	SLATE_BEGIN_ARGS(SAvatarBridgeSourcePanel) {}
		SLATE_EVENT(FOnAvatarBridgeSourceCreated, OnSourceCreated)
	SLATE_END_ARGS()

	void Construct(const FArguments& InArgs);

private:
	FReply OnTestConnection();
	FReply OnAdd();
	FText GetStatusText() const;

	FOnAvatarBridgeSourceCreated OnSourceCreated;
	FString ServerAddress = TEXT("127.0.0.1:50051");
	FAvatarBridgeStreamSettings Defaults;

	/** Written by the connection test's worker, read by Slate. */
	struct FStatus
	{
		FCriticalSection Lock;
		FString Text = TEXT("Not tested");
		bool bBusy = false;
	};
	TSharedRef<FStatus> Status = MakeShared<FStatus>();
};

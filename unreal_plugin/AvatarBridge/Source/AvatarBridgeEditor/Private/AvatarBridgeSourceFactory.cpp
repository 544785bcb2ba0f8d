#include "AvatarBridgeSourceFactory.h"

#include "AvatarBridgeLiveLinkSource.h"
#include "Misc/Parse.h"
#include "SAvatarBridgeSourcePanel.h"

#define LOCTEXT_NAMESPACE "AvatarBridgeSourceFactory"

FText UAvatarBridgeSourceFactory::GetSourceDisplayName() const
{
	return LOCTEXT("DisplayName", "Avatar Bridge");
}

FText UAvatarBridgeSourceFactory::GetSourceTooltip() const
{
	return LOCTEXT("Tooltip", "Speech-driven ARKit face animation from an avatar-bridge server (one subject per stream)");
}

FString UAvatarBridgeSourceFactory::MakeConnectionString(const FString& ServerAddress)
{
	return FString::Printf(TEXT("ServerAddress=\"%s\""), *ServerAddress);
}

TSharedPtr<SWidget> UAvatarBridgeSourceFactory::BuildCreationPanel(FOnLiveLinkSourceCreated OnLiveLinkSourceCreated) const
{
	return SNew(SAvatarBridgeSourcePanel)
		.OnSourceCreated_Lambda([OnLiveLinkSourceCreated](const FString& ServerAddress, const FAvatarBridgeStreamSettings& Defaults)
		{
			TSharedPtr<ILiveLinkSource> Source = MakeShared<FAvatarBridgeLiveLinkSource>(ServerAddress, Defaults);
			OnLiveLinkSourceCreated.ExecuteIfBound(Source, MakeConnectionString(ServerAddress));
		});
}

TSharedPtr<ILiveLinkSource> UAvatarBridgeSourceFactory::CreateSource(const FString& ConnectionString) const
{
	FString ServerAddress = TEXT("127.0.0.1:50051");
	FParse::Value(*ConnectionString, TEXT("ServerAddress="), ServerAddress);
	return MakeShared<FAvatarBridgeLiveLinkSource>(ServerAddress);
}

#undef LOCTEXT_NAMESPACE

#include "AvatarBridgeModule.h"

#include "AvatarBridgeLiveLinkSource.h"
#include "Features/IModularFeatures.h"
#include "ILiveLinkClient.h"
#include "Modules/ModuleManager.h"

DEFINE_LOG_CATEGORY(LogAvatarBridge);

FAvatarBridgeModule& FAvatarBridgeModule::Get()
{
	return FModuleManager::LoadModuleChecked<FAvatarBridgeModule>(TEXT("AvatarBridge"));
}

void FAvatarBridgeModule::StartupModule() {}

void FAvatarBridgeModule::ShutdownModule()
{
	FScopeLock Lock(&SourcesLock);
	Sources.Reset();
}

TSharedPtr<FAvatarBridgeLiveLinkSource> FAvatarBridgeModule::GetOrCreateSource(const FString& ServerAddress)
{
	return GetOrCreateSource(ServerAddress, FAvatarBridgeSecurity());
}

TSharedPtr<FAvatarBridgeLiveLinkSource> FAvatarBridgeModule::GetOrCreateSource(const FString& ServerAddress,
	const FAvatarBridgeSecurity& Security)
{
	{
		FScopeLock Lock(&SourcesLock);
		for (const TWeakPtr<FAvatarBridgeLiveLinkSource>& Weak : Sources)
		{
			TSharedPtr<FAvatarBridgeLiveLinkSource> Source = Weak.Pin();
			if (Source.IsValid() && Source->GetServerAddress() == ServerAddress && Source->GetSecurity() == Security &&
				Source->IsSourceStillValid())
			{
				return Source;
			}
		}
	}
	IModularFeatures& Features = IModularFeatures::Get();
	if (!Features.IsModularFeatureAvailable(ILiveLinkClient::ModularFeatureName))
	{
		UE_LOG(LogAvatarBridge, Error, TEXT("Live Link is not available: enable the Live Link plugin"));
		return nullptr;
	}
	ILiveLinkClient& Client = Features.GetModularFeature<ILiveLinkClient>(ILiveLinkClient::ModularFeatureName);
	TSharedPtr<FAvatarBridgeLiveLinkSource> Source =
		MakeShared<FAvatarBridgeLiveLinkSource>(ServerAddress, FAvatarBridgeStreamSettings(), Security);
	Client.AddSource(Source);  // ReceiveClient() registers it with us
	return Source;
}

void FAvatarBridgeModule::RegisterSource(const TSharedPtr<FAvatarBridgeLiveLinkSource>& Source)
{
	FScopeLock Lock(&SourcesLock);
	Sources.RemoveAll([](const TWeakPtr<FAvatarBridgeLiveLinkSource>& W) { return !W.IsValid(); });
	Sources.AddUnique(Source);
}

void FAvatarBridgeModule::UnregisterSource(const FAvatarBridgeLiveLinkSource* Source)
{
	FScopeLock Lock(&SourcesLock);
	Sources.RemoveAll([Source](const TWeakPtr<FAvatarBridgeLiveLinkSource>& W)
	{
		return !W.IsValid() || W.Pin().Get() == Source;
	});
}

IMPLEMENT_MODULE(FAvatarBridgeModule, AvatarBridge)

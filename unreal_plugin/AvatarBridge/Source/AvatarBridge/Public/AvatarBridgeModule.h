// The runtime module: finds or creates the Live Link source for a server address.
#pragma once

#include "CoreMinimal.h"
#include "Modules/ModuleInterface.h"

class FAvatarBridgeLiveLinkSource;
struct FAvatarBridgeSecurity;

DECLARE_LOG_CATEGORY_EXTERN(LogAvatarBridge, Log, All);

class AVATARBRIDGE_API FAvatarBridgeModule : public IModuleInterface
{
public:
	static FAvatarBridgeModule& Get();

	virtual void StartupModule() override;
	virtual void ShutdownModule() override;

	/** The source connected to ServerAddress (with Security), added to the Live Link client if there is none yet. */
	TSharedPtr<FAvatarBridgeLiveLinkSource> GetOrCreateSource(const FString& ServerAddress);
	TSharedPtr<FAvatarBridgeLiveLinkSource> GetOrCreateSource(const FString& ServerAddress, const FAvatarBridgeSecurity& Security);

	/** Sources register themselves here when Live Link gives them a client (also the panel's ones). */
	void RegisterSource(const TSharedPtr<FAvatarBridgeLiveLinkSource>& Source);
	void UnregisterSource(const FAvatarBridgeLiveLinkSource* Source);

private:
	FCriticalSection SourcesLock;
	TArray<TWeakPtr<FAvatarBridgeLiveLinkSource>> Sources;
};

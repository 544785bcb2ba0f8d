// Settings of an Avatar Bridge Live Link source (shown in the Live Link panel's details).
#pragma once

#include "CoreMinimal.h"
#include "LiveLinkSourceSettings.h"
#include "AvatarBridgeTypes.h"
#include "AvatarBridgeSourceSettings.generated.h"

UCLASS()
class AVATARBRIDGE_API UAvatarBridgeSourceSettings : public ULiveLinkSourceSettings
{
	GENERATED_BODY()

public:
	/** host:port of the avatar-bridge server (plaintext gRPC unless Security names a TLS CA file). */
	UPROPERTY(EditAnywhere, Category = "Avatar Bridge")
	FString ServerAddress = TEXT("127.0.0.1:50051");

	/** TLS CA file and bearer-token file for a secured server (docs/security.md); empty = plaintext, no token. */
	UPROPERTY(EditAnywhere, Category = "Avatar Bridge")
	FAvatarBridgeSecurity Security;

	/** Defaults for streams started on this source without settings of their own. */
	UPROPERTY(EditAnywhere, Category = "Avatar Bridge")
	FAvatarBridgeStreamSettings DefaultStream;
};

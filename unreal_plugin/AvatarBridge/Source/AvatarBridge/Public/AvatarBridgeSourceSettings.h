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
	/** host:port of the avatar-bridge server (plaintext gRPC). */
	UPROPERTY(EditAnywhere, Category = "Avatar Bridge")
	FString ServerAddress = TEXT("127.0.0.1:50051");

	/** Defaults for streams started on this source without settings of their own. */
	UPROPERTY(EditAnywhere, Category = "Avatar Bridge")
	FAvatarBridgeStreamSettings DefaultStream;
};

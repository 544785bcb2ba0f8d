// Small Blueprint helpers around the bridge conventions.
#pragma once

#include "CoreMinimal.h"
#include "Kismet/BlueprintFunctionLibrary.h"
#include "AvatarBridgeBlueprintLibrary.generated.h"

UCLASS()
class AVATARBRIDGE_API UAvatarBridgeBlueprintLibrary : public UBlueprintFunctionLibrary
{
	GENERATED_BODY()

public:
	/** Reads a PCM16 .wav file from disk (e.g. under Content/NonUFS) for UAvatarBridgeComponent::StartFromPCM / PushPCM16. */
	UFUNCTION(BlueprintCallable, Category = "Avatar Bridge")
	static bool LoadWavFile(const FString& Path, TArray<uint8>& OutPCM16, int32& OutSampleRate, int32& OutNumChannels,
		FString& OutError);

	/** "jawOpen" -> "JawOpen": the curve name Unreal's ARKit pipeline (and mh_arkit_mapping_pose) uses. */
	UFUNCTION(BlueprintPure, Category = "Avatar Bridge")
	static FName ToUnrealCurveName(const FString& ArkitName);

	/** The 61 curve names a Basic-role subject of this plugin carries, in order. */
	UFUNCTION(BlueprintPure, Category = "Avatar Bridge")
	static TArray<FName> GetSubjectCurveNames();
};

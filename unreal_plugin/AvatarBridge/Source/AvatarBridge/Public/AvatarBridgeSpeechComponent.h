// Blueprint API for Speak (docs/speak.md): "say this line" — the server synthesises the text and animates it;
// this component plays the speech and exposes the face as ARKit curves on the same clock (the core's SpeakCall).
#pragma once

#include "CoreMinimal.h"
#include "Components/ActorComponent.h"
#include "AvatarBridgeTypes.h"
#include "AvatarBridgeSpeechComponent.generated.h"

class FAvatarBridgeSpeechListener;
class UAudioComponent;
class USoundWaveProcedural;

DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(FAvatarBridgeSpeechFinished, bool, bStopped, const FString&, Detail);

UCLASS(ClassGroup = (Animation), meta = (BlueprintSpawnableComponent), DisplayName = "Avatar Bridge Speech")
class AVATARBRIDGE_API UAvatarBridgeSpeechComponent : public UActorComponent
{
	GENERATED_BODY()

public:
	UAvatarBridgeSpeechComponent();

	/** host:port of the avatar-bridge server. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Avatar Bridge|Speech")
	FString ServerAddress = TEXT("127.0.0.1:50051");

	/** TLS CA file and bearer-token file for a secured server (docs/security.md); empty = plaintext, no token. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Avatar Bridge|Speech")
	FAvatarBridgeSecurity Security;

	/** 30 or 60. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Avatar Bridge|Speech")
	int32 Fps = 60;

	/** Play the speech on this actor (off: the curves still follow the speech's clock, from its first audio). */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Avatar Bridge|Speech")
	bool bPlayAudio = true;

	/** Once: the line was spoken to its end (bStopped false) or stopped by StopSpeaking (true); Detail names an error. */
	UPROPERTY(BlueprintAssignable, Category = "Avatar Bridge|Speech")
	FAvatarBridgeSpeechFinished OnSpeechFinished;

	/**
	 * Say this line: Text (plain or the SSML subset), Voice ("espeak:en-us", "festival:us-slt-hts"; empty = the
	 * language's default), Language (BCP-47; empty = en). Replaces a line still speaking. False if the call could not start.
	 */
	UFUNCTION(BlueprintCallable, Category = "Avatar Bridge|Speech", meta = (Keywords = "speak say tts line"))
	bool SayLine(const FString& Text, const FString& Voice, const FString& Language);

	/** Barge-in: stops the audio at once; the face eases to rest over 0.25 s (the server's eased frames). */
	UFUNCTION(BlueprintCallable, Category = "Avatar Bridge|Speech")
	void StopSpeaking();

	UFUNCTION(BlueprintPure, Category = "Avatar Bridge|Speech")
	bool IsSpeaking() const;

	/** Seconds of the line heard so far (the clock the curves follow); -1 before its audio started. */
	UFUNCTION(BlueprintPure, Category = "Avatar Bridge|Speech")
	float GetSpeechTime() const { return static_cast<float>(SpeechTime); }

	/** The 52 ARKit curves at the speech clock, by Unreal name ("JawOpen"), 0..1; all 0 when idle. */
	UFUNCTION(BlueprintPure, Category = "Avatar Bridge|Speech")
	TMap<FName, float> GetSpeechCurves() const { return Curves; }

	virtual void TickComponent(float DeltaTime, ELevelTick TickType, FActorComponentTickFunction* ThisTickFunction) override;
	virtual void EndPlay(const EEndPlayReason::Type EndPlayReason) override;

private:
	void EndCall();
	void StopAudio();

	TSharedPtr<FAvatarBridgeSpeechListener, ESPMode::ThreadSafe> Listener;

	UPROPERTY(Transient)
	TObjectPtr<UAudioComponent> AudioComponent;

	UPROPERTY(Transient)
	TObjectPtr<USoundWaveProcedural> ProceduralWave;

	TMap<FName, float> Curves;
	double PlaybackStartSeconds = -1.0;  // FPlatformTime::Seconds() when the first audio was queued
	double SpeechTime = -1.0;
	bool bStopRequested = false;
	bool bFinishedBroadcast = false;
};

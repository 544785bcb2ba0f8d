// Blueprint API: stream speech to the bridge and drive a Live Link subject, with the audio played
// in sync (frames are shown at the audio playback time; playback starts after the stream header's
// look-ahead plus a jitter budget).
#pragma once

#include "CoreMinimal.h"
#include "Components/ActorComponent.h"
#include "AvatarBridgeTypes.h"
#include "AvatarBridgeComponent.generated.h"

class FAvatarBridgeLiveLinkSource;
class FAvatarBridgeStream;
class FAvatarBridgeSubmixListener;
class UAudioComponent;
class USoundSubmix;
class USoundWave;
class USoundWaveProcedural;

DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(FAvatarBridgeStatusChanged, EAvatarBridgeStatus, Status, const FString&, Detail);
DECLARE_DYNAMIC_MULTICAST_DELEGATE(FAvatarBridgePlaybackStarted);

UCLASS(ClassGroup = (Animation), meta = (BlueprintSpawnableComponent), DisplayName = "Avatar Bridge")
class AVATARBRIDGE_API UAvatarBridgeComponent : public UActorComponent
{
	GENERATED_BODY()

public:
	UAvatarBridgeComponent();

	/** host:port of the avatar-bridge server. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Avatar Bridge")
	FString ServerAddress = TEXT("127.0.0.1:50051");

	/** TLS CA file and bearer-token file for a secured server (docs/security.md); empty = plaintext, no token. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Avatar Bridge")
	FAvatarBridgeSecurity Security;

	/** The Live Link subject this component's streams publish (select it as "LLink Face Subj"). */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Avatar Bridge")
	FName SubjectName = TEXT("AvatarBridge");

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Avatar Bridge")
	FAvatarBridgeStreamSettings Stream;

	/** SoundWave and PCM streams: play the audio here, delayed so the frames are ready when it is heard. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Avatar Bridge")
	bool bPlayAudio = true;

	/** Live sources (PCM, submix): audio kept while the server is unreachable; older audio is dropped. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Avatar Bridge", meta = (ClampMin = 0.1))
	float MaxBufferedSeconds = 2.f;

	UPROPERTY(BlueprintAssignable, Category = "Avatar Bridge")
	FAvatarBridgeStatusChanged OnStatusChanged;

	/** The stream's audio time 0 is now: the component started its audio, or (Play Audio off) start yours here. */
	UPROPERTY(BlueprintAssignable, Category = "Avatar Bridge")
	FAvatarBridgePlaybackStarted OnPlaybackStarted;

	/** Animate a SoundWave: its PCM goes to the server at once; playback starts when the first frames are in. */
	UFUNCTION(BlueprintCallable, Category = "Avatar Bridge")
	bool StartFromSoundWave(USoundWave* Sound);

	/** Animate what a submix plays (a voice chat, a TTS voice, the mic via Audio Capture). The audio is
	 *  already audible, so the face follows it by the look-ahead + jitter budget. */
	UFUNCTION(BlueprintCallable, Category = "Avatar Bridge")
	bool StartFromSubmix(USoundSubmix* Submix);

	/** Open a stream for raw PCM you push yourself (PushPCM16 / PushFloat), e.g. a TTS network stream. */
	UFUNCTION(BlueprintCallable, Category = "Avatar Bridge")
	bool StartFromPCM(int32 SampleRate = 16000, int32 NumChannels = 1, bool bFloat32 = false);

	/** Interleaved signed 16-bit little-endian samples (StartFromPCM with bFloat32 = false). */
	UFUNCTION(BlueprintCallable, Category = "Avatar Bridge")
	void PushPCM16(const TArray<uint8>& Bytes);

	/** Interleaved float samples -1..1 (StartFromPCM with bFloat32 = true). */
	UFUNCTION(BlueprintCallable, Category = "Avatar Bridge")
	void PushFloat(const TArray<float>& Samples);

	/** No more audio: the rest is animated, then the stream finishes. */
	UFUNCTION(BlueprintCallable, Category = "Avatar Bridge")
	void EndAudio();

	/** Stop now: cancels the stream, stops the audio, removes the subject. */
	UFUNCTION(BlueprintCallable, Category = "Avatar Bridge")
	void StopStream();

	UFUNCTION(BlueprintPure, Category = "Avatar Bridge")
	EAvatarBridgeStatus GetStatus() const;

	UFUNCTION(BlueprintPure, Category = "Avatar Bridge")
	FString GetStatusText() const;

	/** Seconds of the stream's audio heard so far (the clock frames are shown on); -1 before playback. */
	UFUNCTION(BlueprintPure, Category = "Avatar Bridge")
	float GetAudioTime() const { return static_cast<float>(AudioTime); }

	virtual void TickComponent(float DeltaTime, ELevelTick TickType, FActorComponentTickFunction* ThisTickFunction) override;
	virtual void EndPlay(const EEndPlayReason::Type EndPlayReason) override;

private:
	enum class EMode : uint8 { None, SoundWave, Submix, Pcm };

	bool OpenStream(EMode InMode, int32 SampleRate, int32 NumChannels, bool bFloat32, double Buffered);
	void PushBytes(const void* Data, int32 Bytes);
	bool TryStartPlayback(double Now);
	double AudioDeviceClock() const;
	void StopAudio();

	EMode Mode = EMode::None;
	TSharedPtr<FAvatarBridgeLiveLinkSource> Source;
	TSharedPtr<FAvatarBridgeStream> ActiveStream;
	TSharedPtr<FAvatarBridgeSubmixListener, ESPMode::ThreadSafe> SubmixListener;

	UPROPERTY(Transient)
	TObjectPtr<UAudioComponent> AudioComponent;

	UPROPERTY(Transient)
	TObjectPtr<USoundWaveProcedural> ProceduralWave;

	UPROPERTY(Transient)
	TObjectPtr<USoundSubmix> CapturedSubmix;

	UPROPERTY(Transient)
	TObjectPtr<USoundWave> PlayingSound;

	double FirstPushWallTime = -1.0;  // FPlatformTime::Seconds() of the first sample sent
	double ClipSeconds = 0.0;         // SoundWave mode: the whole clip's length
	bool bPlaying = false;
	double ClockAtStart = 0.0;        // audio device clock when playback started
	double LastClock = -1.0;
	double WallAtClockChange = 0.0;
	double AudioTime = -1.0;
	EAvatarBridgeStatus LastStatus = EAvatarBridgeStatus::Idle;
};

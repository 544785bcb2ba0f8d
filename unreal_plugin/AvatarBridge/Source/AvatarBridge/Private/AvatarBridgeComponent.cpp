#include "AvatarBridgeComponent.h"

#include "AudioDevice.h"
#include "AvatarBridgeLiveLinkSource.h"
#include "AvatarBridgeModule.h"
#include "AvatarBridgeStream.h"
#include "AvatarBridgeSubmixListener.h"
#include "Components/AudioComponent.h"
#include "Engine/World.h"
#include "Misc/EngineVersionComparison.h"
#include "Sound/SoundSubmix.h"
#include "Sound/SoundWave.h"
#include "Sound/SoundWaveProcedural.h"

UAvatarBridgeComponent::UAvatarBridgeComponent()
{
	PrimaryComponentTick.bCanEverTick = true;
	PrimaryComponentTick.TickGroup = TG_PrePhysics;  // publish before animation evaluates
	bTickInEditor = false;
}

bool UAvatarBridgeComponent::OpenStream(EMode InMode, int32 SampleRate, int32 NumChannels, bool bFloat32, double Buffered)
{
	StopStream();
	if (SampleRate < 8000 || SampleRate > 48000 || NumChannels < 1 || NumChannels > 2)
	{
		UE_LOG(LogAvatarBridge, Error, TEXT("%s: audio of %d Hz, %d channels; the bridge takes 8000..48000 Hz, 1 or 2 channels"),
			*SubjectName.ToString(), SampleRate, NumChannels);
		return false;
	}
	Source = FAvatarBridgeModule::Get().GetOrCreateSource(ServerAddress, Security);
	if (!Source.IsValid())
	{
		return false;
	}
	ActiveStream = Source->OpenStream(SubjectName, Stream, SampleRate, NumChannels, bFloat32, Buffered);
	if (!ActiveStream.IsValid())
	{
		return false;
	}
	Mode = InMode;
	FirstPushWallTime = -1.0;
	bPlaying = false;
	AudioTime = -1.0;
	LastClock = -1.0;
	return true;
}

bool UAvatarBridgeComponent::StartFromSoundWave(USoundWave* Sound)
{
	if (!Sound)
	{
		UE_LOG(LogAvatarBridge, Error, TEXT("StartFromSoundWave: no sound given"));
		return false;
	}
	TArray<uint8> Pcm;
	uint32 Rate = 0;
	uint16 Channels = 0;
#if WITH_EDITOR
	// The imported PCM (editor and PIE).
	if (!Sound->GetImportedSoundWaveData(Pcm, Rate, Channels))
	{
		Pcm.Reset();
	}
#endif
	if (Pcm.Num() == 0)
	{
		// Packaged builds: decompress fully into RawPCMData (works for non-streamed, inline-loaded sounds).
		if (FAudioDevice* Device = GetWorld() ? GetWorld()->GetAudioDeviceRaw() : nullptr)
		{
			Device->Precache(Sound, /*bSynchronous=*/true, /*bTrackMemory=*/false, /*bForceFullDecompression=*/true);
		}
		if (Sound->RawPCMData && Sound->RawPCMDataSize > 0)
		{
			Pcm.Append(Sound->RawPCMData, Sound->RawPCMDataSize);
			Rate = static_cast<uint32>(Sound->GetSampleRateForCurrentPlatform());
			Channels = static_cast<uint16>(Sound->NumChannels);
		}
	}
	if (Pcm.Num() == 0 || Rate == 0 || Channels == 0)
	{
		UE_LOG(LogAvatarBridge, Error,
			TEXT("StartFromSoundWave(%s): no PCM available. In packaged builds set the sound's Loading Behavior to "
				 "'Force Inline' (no stream caching), or load the audio yourself and use StartFromPCM."), *Sound->GetName());
		return false;
	}
	ClipSeconds = static_cast<double>(Pcm.Num()) / (2.0 * Channels * Rate);
	// The whole clip goes at once: the buffer must hold all of it, and so must the jitter buffer.
	if (!OpenStream(EMode::SoundWave, static_cast<int32>(Rate), Channels, false, ClipSeconds + 1.0))
	{
		return false;
	}
	PlayingSound = Sound;
	PushBytes(Pcm.GetData(), Pcm.Num());
	ActiveStream->EndAudio();
	return true;
}

bool UAvatarBridgeComponent::StartFromSubmix(USoundSubmix* Submix)
{
	FAudioDevice* Device = GetWorld() ? GetWorld()->GetAudioDeviceRaw() : nullptr;
	if (!Submix || !Device)
	{
		UE_LOG(LogAvatarBridge, Error, TEXT("StartFromSubmix: %s"), Submix ? TEXT("no audio device") : TEXT("no submix given"));
		return false;
	}
	const int32 Rate = static_cast<int32>(Device->GetSampleRate());
	if (!OpenStream(EMode::Submix, Rate, 1, /*bFloat32=*/true, MaxBufferedSeconds))
	{
		return false;
	}
	SubmixListener = MakeShared<FAvatarBridgeSubmixListener, ESPMode::ThreadSafe>(ActiveStream);
	CapturedSubmix = Submix;
#if UE_VERSION_NEWER_THAN(5, 3, 99)
	Device->RegisterSubmixBufferListener(SubmixListener.ToSharedRef(), *Submix);
#else
	Device->RegisterSubmixBufferListener(SubmixListener.Get(), Submix);
#endif
	FirstPushWallTime = FPlatformTime::Seconds();
	return true;
}

bool UAvatarBridgeComponent::StartFromPCM(int32 SampleRate, int32 NumChannels, bool bFloat32)
{
	if (!OpenStream(EMode::Pcm, SampleRate, NumChannels, bFloat32, MaxBufferedSeconds))
	{
		return false;
	}
	if (bPlayAudio)
	{
		ProceduralWave = NewObject<USoundWaveProcedural>(this);
		ProceduralWave->SetSampleRate(SampleRate);
		ProceduralWave->NumChannels = NumChannels;
		ProceduralWave->Duration = INDEFINITELY_LOOPING_DURATION;
		ProceduralWave->SoundGroup = SOUNDGROUP_Voice;
		ProceduralWave->bLooping = false;
		// Float input is converted to PCM16 for playback in PushFloat.
	}
	return true;
}

void UAvatarBridgeComponent::PushPCM16(const TArray<uint8>& Bytes)
{
	if (Mode != EMode::Pcm || !ActiveStream.IsValid())
	{
		return;
	}
	PushBytes(Bytes.GetData(), Bytes.Num());
	if (ProceduralWave)
	{
		ProceduralWave->QueueAudio(Bytes.GetData(), Bytes.Num());
	}
}

void UAvatarBridgeComponent::PushFloat(const TArray<float>& Samples)
{
	if (Mode != EMode::Pcm || !ActiveStream.IsValid())
	{
		return;
	}
	PushBytes(Samples.GetData(), Samples.Num() * static_cast<int32>(sizeof(float)));
	if (ProceduralWave)
	{
		TArray<int16> Pcm16;
		Pcm16.SetNumUninitialized(Samples.Num());
		for (int32 i = 0; i < Samples.Num(); ++i)
		{
			Pcm16[i] = static_cast<int16>(FMath::Clamp(Samples[i], -1.f, 1.f) * 32767.f);
		}
		ProceduralWave->QueueAudio(reinterpret_cast<const uint8*>(Pcm16.GetData()), Pcm16.Num() * 2);
	}
}

void UAvatarBridgeComponent::PushBytes(const void* Data, int32 Bytes)
{
	if (FirstPushWallTime < 0)
	{
		FirstPushWallTime = FPlatformTime::Seconds();
	}
	ActiveStream->PushAudio(Data, Bytes);
}

void UAvatarBridgeComponent::EndAudio()
{
	if (ActiveStream.IsValid())
	{
		ActiveStream->EndAudio();
	}
}

void UAvatarBridgeComponent::StopStream()
{
	if (SubmixListener.IsValid() && CapturedSubmix)
	{
		if (FAudioDevice* Device = GetWorld() ? GetWorld()->GetAudioDeviceRaw() : nullptr)
		{
#if UE_VERSION_NEWER_THAN(5, 3, 99)
			Device->UnregisterSubmixBufferListener(SubmixListener.ToSharedRef(), *CapturedSubmix);
#else
			Device->UnregisterSubmixBufferListener(SubmixListener.Get(), CapturedSubmix);
#endif
		}
	}
	SubmixListener.Reset();
	CapturedSubmix = nullptr;
	StopAudio();
	if (Source.IsValid() && ActiveStream.IsValid())
	{
		Source->CloseStream(ActiveStream);
	}
	ActiveStream.Reset();
	Mode = EMode::None;
	AudioTime = -1.0;
}

void UAvatarBridgeComponent::StopAudio()
{
	if (AudioComponent)
	{
		AudioComponent->Stop();
		AudioComponent->DestroyComponent();
		AudioComponent = nullptr;
	}
	ProceduralWave = nullptr;
	PlayingSound = nullptr;
	bPlaying = false;
}

EAvatarBridgeStatus UAvatarBridgeComponent::GetStatus() const
{
	return ActiveStream.IsValid() ? ActiveStream->GetStatus() : EAvatarBridgeStatus::Idle;
}

FString UAvatarBridgeComponent::GetStatusText() const
{
	return ActiveStream.IsValid() ? ActiveStream->GetStatusText() : FString(TEXT("idle"));
}

double UAvatarBridgeComponent::AudioDeviceClock() const
{
	FAudioDevice* Device = GetWorld() ? GetWorld()->GetAudioDeviceRaw() : nullptr;
	return Device ? Device->GetAudioClock() : FPlatformTime::Seconds();
}

bool UAvatarBridgeComponent::TryStartPlayback(double Now)
{
	const double Delay = ActiveStream->GetStartDelaySeconds();  // header look-ahead + jitter budget
	double SentAt = 0.0;  // when the first audio left for the server (it waits in a queue while connecting)
	if (Delay < 0 || FirstPushWallTime < 0 || !ActiveStream->GetFirstSentPlatformSeconds(SentAt))
	{
		return false;  // no header yet
	}
	if (Mode == EMode::SoundWave)
	{
		// Sent faster than real time: start once a jitter budget of frames (or the whole clip) is in.
		const double Needed = FMath::Min(ClipSeconds - 1.0 / Stream.Fps, Stream.JitterBufferMs / 1000.0);
		if (ActiveStream->GetNewestFrameTime() < Needed && ActiveStream->GetStatus() != EAvatarBridgeStatus::Finished)
		{
			return false;
		}
	}
	else if (Now < SentAt + Delay)
	{
		return false;  // live: audio sent at t is heard at t + delay
	}
	if (Mode == EMode::Submix || !bPlayAudio)
	{
		// Nothing to play: the clock is the sent audio, delayed.
		ClockAtStart = (Mode == EMode::SoundWave ? Now : SentAt + Delay);
		bPlaying = true;
		OnPlaybackStarted.Broadcast();
		return true;
	}
	USoundBase* Sound = Mode == EMode::SoundWave ? static_cast<USoundBase*>(PlayingSound.Get())
	                                             : static_cast<USoundBase*>(ProceduralWave.Get());
	if (!Sound)
	{
		return false;
	}
	AudioComponent = NewObject<UAudioComponent>(GetOwner() ? static_cast<UObject*>(GetOwner()) : this);
	AudioComponent->bAutoActivate = false;
	AudioComponent->bAutoDestroy = false;
	AudioComponent->SetSound(Sound);
	AudioComponent->RegisterComponentWithWorld(GetWorld());
	AudioComponent->Play();
	ClockAtStart = AudioDeviceClock();
	LastClock = ClockAtStart;
	WallAtClockChange = Now;
	bPlaying = true;
	OnPlaybackStarted.Broadcast();
	return true;
}

void UAvatarBridgeComponent::TickComponent(float DeltaTime, ELevelTick TickType, FActorComponentTickFunction* ThisTickFunction)
{
	Super::TickComponent(DeltaTime, TickType, ThisTickFunction);
	if (!ActiveStream.IsValid())
	{
		return;
	}
	const double Now = FPlatformTime::Seconds();
	const EAvatarBridgeStatus Status = ActiveStream->GetStatus();
	if (Status != LastStatus)
	{
		LastStatus = Status;
		OnStatusChanged.Broadcast(Status, ActiveStream->GetStatusText());
	}
	if (!bPlaying && !TryStartPlayback(Now))
	{
		ActiveStream->Publish(-1.0);  // before playback: the neutral pose, and the subject exists
		return;
	}
	if (AudioComponent)
	{
		// The audio device clock advances per render buffer; interpolate with the wall clock in between.
		const double Clock = AudioDeviceClock();
		if (Clock != LastClock)
		{
			LastClock = Clock;
			WallAtClockChange = Now;
		}
		AudioTime = (LastClock - ClockAtStart) + FMath::Min(Now - WallAtClockChange, 0.05);
	}
	else
	{
		AudioTime = Now - ClockAtStart;
	}
	ActiveStream->Publish(AudioTime);

	const bool bClipDone = Mode == EMode::SoundWave && AudioTime > ClipSeconds + Stream.StallHoldSeconds + Stream.StallEaseSeconds;
	if (bClipDone && Status == EAvatarBridgeStatus::Finished)
	{
		StopAudio();  // the clip was heard and shown; the subject stays at its neutral pose
		ActiveStream->Publish(AudioTime);
		Mode = EMode::None;
		ActiveStream.Reset();
	}
}

void UAvatarBridgeComponent::EndPlay(const EEndPlayReason::Type EndPlayReason)
{
	StopStream();
	Super::EndPlay(EndPlayReason);
}

#include "AvatarBridgeSpeechComponent.h"

#include "AvatarBridgeModule.h"
#include "AvatarBridgeSecurity.h"
#include "Components/AudioComponent.h"
#include "HAL/PlatformTime.h"
#include "Sound/SoundWaveProcedural.h"

#include "avatarbridge/ArkitCurves.h"
#include "avatarbridge/BridgeClient.h"

#include <memory>
#include <mutex>
#include <string>
#include <vector>

/** The core's SpeakListener: audio and frames arrive on the call's reader thread; the game thread reads them in Tick. */
class FAvatarBridgeSpeechListener : public avatarbridge::SpeakListener
{
public:
	std::unique_ptr<avatarbridge::BridgeClient> Client;
	std::unique_ptr<avatarbridge::SpeakCall> Call;

	std::mutex Mutex;
	bool bHaveHeader = false;
	avatarbridge::SpeakHeaderInfo Header;
	avatarbridge::CurveMap CurveMap;
	std::vector<avatarbridge::Frame> Frames;   // by index; a barge-in's eased frames supersede from k0 on
	TArray<uint8> PendingAudio;                // PCM16 not yet queued to the sound wave
	uint64 ReceivedSamples = 0;
	double StopAt = -1.0;                      // audio after this (seconds) is dropped
	bool bStatus = false;
	avatarbridge::SpeakStatusInfo Status;
	bool bClosed = false;
	avatarbridge::CallStatus Closed;

	virtual void OnHeader(const avatarbridge::SpeakHeaderInfo& H) override
	{
		std::lock_guard<std::mutex> Lock(Mutex);
		Header = H;
		CurveMap = avatarbridge::CurveMap(H.expression.blendshape_names);
		bHaveHeader = true;
	}
	virtual void OnAudio(const avatarbridge::SpeakAudioChunk& A) override
	{
		std::lock_guard<std::mutex> Lock(Mutex);
		uint64 Keep = A.samples.size();
		if (StopAt >= 0.0 && Header.sample_rate)
		{
			const uint64 StopSample = static_cast<uint64>(StopAt * Header.sample_rate + 0.5);
			Keep = A.sample_index >= StopSample ? 0 : FMath::Min<uint64>(Keep, StopSample - A.sample_index);
		}
		PendingAudio.Append(reinterpret_cast<const uint8*>(A.samples.data()), static_cast<int32>(Keep * 2));
		ReceivedSamples = A.sample_index + A.samples.size();
	}
	virtual void OnFrames(std::vector<avatarbridge::Frame>& Fs) override
	{
		std::lock_guard<std::mutex> Lock(Mutex);
		if (!Fs.empty() && Fs.front().index < Frames.size())
		{
			Frames.resize(Fs.front().index);
		}
		for (avatarbridge::Frame& F : Fs)
		{
			Frames.push_back(std::move(F));
		}
	}
	virtual void OnStatus(const avatarbridge::SpeakStatusInfo& S) override
	{
		std::lock_guard<std::mutex> Lock(Mutex);
		Status = S;
		bStatus = true;
	}
	virtual void OnMalformed(const std::string& What) override
	{
		UE_LOG(LogAvatarBridge, Warning, TEXT("Speak: %s"), UTF8_TO_TCHAR(What.c_str()));
	}
	virtual void OnClosed(const avatarbridge::CallStatus& S) override
	{
		std::lock_guard<std::mutex> Lock(Mutex);
		Closed = S;
		bClosed = true;
	}

	/** The 52 canonical weights at Time (seconds on the audio clock), interpolated; false when no frame is held. */
	bool Evaluate(double Time, std::vector<float>& Out52, std::vector<std::string>& OutUnrealNames)
	{
		std::lock_guard<std::mutex> Lock(Mutex);
		if (Frames.empty() || !bHaveHeader)
		{
			return false;
		}
		size_t Hi = 0;
		while (Hi < Frames.size() && Frames[Hi].time <= Time)
		{
			++Hi;
		}
		const avatarbridge::Frame& A = Frames[Hi == 0 ? 0 : Hi - 1];
		const avatarbridge::Frame& B = Frames[Hi < Frames.size() ? Hi : Frames.size() - 1];
		const double Span = B.time - A.time;
		const float Alpha = Span > 0.0 ? static_cast<float>(FMath::Clamp((Time - A.time) / Span, 0.0, 1.0)) : 0.f;
		std::vector<float> Wa, Wb;
		CurveMap.Apply(A.weights, Wa);
		CurveMap.Apply(B.weights, Wb);
		OutUnrealNames = CurveMap.unreal_names();  // "JawOpen", ... canonical order
		Out52.resize(Wa.size());
		for (size_t i = 0; i < Wa.size(); ++i)
		{
			Out52[i] = Wa[i] + (Wb[i] - Wa[i]) * Alpha;
		}
		return true;
	}
};

UAvatarBridgeSpeechComponent::UAvatarBridgeSpeechComponent()
{
	PrimaryComponentTick.bCanEverTick = true;
	PrimaryComponentTick.TickGroup = TG_PrePhysics;  // curves ready before animation evaluates
	bTickInEditor = false;
}

bool UAvatarBridgeSpeechComponent::SayLine(const FString& Text, const FString& Voice, const FString& Language)
{
	EndCall();
	if (Text.TrimStartAndEnd().IsEmpty())
	{
		UE_LOG(LogAvatarBridge, Error, TEXT("SayLine: the text is empty"));
		return false;
	}
	avatarbridge::ClientOptions Options;
	FString SecurityError;
	if (!AvatarBridgeClientOptions(Security, Options, SecurityError))
	{
		UE_LOG(LogAvatarBridge, Error, TEXT("SayLine: %s"), *SecurityError);
		return false;
	}
	Listener = MakeShared<FAvatarBridgeSpeechListener, ESPMode::ThreadSafe>();
	Listener->Client = std::make_unique<avatarbridge::BridgeClient>(TCHAR_TO_UTF8(*ServerAddress), Options);
	if (!Listener->Client->SetupError().empty())
	{
		UE_LOG(LogAvatarBridge, Error, TEXT("SayLine: %s"), UTF8_TO_TCHAR(Listener->Client->SetupError().c_str()));
		Listener.Reset();
		return false;
	}
	avatarbridge::SpeakSettings Settings;
	Settings.text = TCHAR_TO_UTF8(*Text);
	Settings.voice = TCHAR_TO_UTF8(*Voice);
	Settings.language = TCHAR_TO_UTF8(*Language);
	Settings.fps = static_cast<uint32>(Fps);
	Settings.stream_id = TCHAR_TO_UTF8(*GetNameSafe(GetOwner()));
	Listener->Call = Listener->Client->Speak(Settings, Listener.Get());
	PlaybackStartSeconds = -1.0;
	SpeechTime = -1.0;
	bStopRequested = false;
	bFinishedBroadcast = false;
	return true;
}

void UAvatarBridgeSpeechComponent::StopSpeaking()
{
	if (!Listener.IsValid() || !Listener->Call || bStopRequested)
	{
		return;
	}
	bStopRequested = true;
	const double At = FMath::Max(0.0, SpeechTime);
	{
		std::lock_guard<std::mutex> Lock(Listener->Mutex);
		Listener->StopAt = At;
		Listener->PendingAudio.Reset();
	}
	StopAudio();  // the audio after the stop is dropped; the face keeps its clock to ease to rest
	Listener->Call->Stop(At);
}

bool UAvatarBridgeSpeechComponent::IsSpeaking() const
{
	return Listener.IsValid() && !bFinishedBroadcast;
}

void UAvatarBridgeSpeechComponent::TickComponent(float DeltaTime, ELevelTick TickType, FActorComponentTickFunction* ThisTickFunction)
{
	Super::TickComponent(DeltaTime, TickType, ThisTickFunction);
	if (!Listener.IsValid())
	{
		return;
	}
	TArray<uint8> Audio;
	uint32 SampleRate = 0;
	double EndSeconds = 0.0;
	bool bStatus = false, bClosed = false;
	avatarbridge::CallStatus Closed;
	{
		std::lock_guard<std::mutex> Lock(Listener->Mutex);
		Audio = MoveTemp(Listener->PendingAudio);
		Listener->PendingAudio.Reset();
		SampleRate = Listener->Header.sample_rate;
		EndSeconds = Listener->bStatus ? Listener->Status.audio_seconds : 0.0;
		bStatus = Listener->bStatus;
		bClosed = Listener->bClosed;
		Closed = Listener->Closed;
	}
	if (Audio.Num() > 0 && SampleRate > 0 && !bStopRequested)
	{
		if (PlaybackStartSeconds < 0.0)
		{
			PlaybackStartSeconds = FPlatformTime::Seconds();
			if (bPlayAudio)
			{
				ProceduralWave = NewObject<USoundWaveProcedural>(this);
				ProceduralWave->SetSampleRate(SampleRate);
				ProceduralWave->NumChannels = 1;
				ProceduralWave->Duration = INDEFINITELY_LOOPING_DURATION;
				ProceduralWave->SoundGroup = SOUNDGROUP_Voice;
				ProceduralWave->bLooping = false;
				AudioComponent = NewObject<UAudioComponent>(GetOwner() ? static_cast<UObject*>(GetOwner()) : this);
				AudioComponent->bAutoActivate = false;
				AudioComponent->bAutoDestroy = false;
				AudioComponent->SetSound(ProceduralWave);
				AudioComponent->RegisterComponent();
			}
		}
		if (ProceduralWave)
		{
			ProceduralWave->QueueAudio(Audio.GetData(), Audio.Num());
		}
		if (AudioComponent && !AudioComponent->IsPlaying())
		{
			AudioComponent->Play();
		}
	}
	// One clock: the face is shown at the time of the audio heard (chunks are queued back to back from sample 0).
	if (PlaybackStartSeconds >= 0.0)
	{
		SpeechTime = FPlatformTime::Seconds() - PlaybackStartSeconds;
	}
	std::vector<float> W;
	std::vector<std::string> Names;
	Curves.Reset();
	if (SpeechTime >= 0.0 && Listener->Evaluate(SpeechTime, W, Names))
	{
		for (size_t i = 0; i < W.size() && i < Names.size(); ++i)
		{
			Curves.Add(FName(UTF8_TO_TCHAR(Names[i].c_str())), W[i]);
		}
	}
	// Done once the call ended and the clock passed the end (or the eased frames after a stop).
	const double EaseSeconds = bStopRequested ? 0.25 + 1.0 / FMath::Max(Fps, 1) : 0.0;
	if (bClosed && !bFinishedBroadcast && (!Closed.ok() || !bStatus || SpeechTime >= EndSeconds + EaseSeconds))
	{
		bFinishedBroadcast = true;
		const FString Detail = Closed.ok() ? FString() : FString(UTF8_TO_TCHAR(Closed.ToString().c_str()));
		if (!Closed.ok())
		{
			UE_LOG(LogAvatarBridge, Error, TEXT("SayLine: %s"), *Detail);
		}
		OnSpeechFinished.Broadcast(bStopRequested, Detail);
	}
}

void UAvatarBridgeSpeechComponent::StopAudio()
{
	if (AudioComponent)
	{
		AudioComponent->Stop();
		AudioComponent->DestroyComponent();
		AudioComponent = nullptr;
	}
	ProceduralWave = nullptr;
}

void UAvatarBridgeSpeechComponent::EndCall()
{
	StopAudio();
	if (Listener.IsValid())
	{
		if (Listener->Call)
		{
			Listener->Call->Cancel();
			Listener->Call.reset();  // joins the reader thread
		}
		Listener.Reset();
	}
	Curves.Reset();
	SpeechTime = -1.0;
	PlaybackStartSeconds = -1.0;
}

void UAvatarBridgeSpeechComponent::EndPlay(const EEndPlayReason::Type EndPlayReason)
{
	EndCall();
	Super::EndPlay(EndPlayReason);
}

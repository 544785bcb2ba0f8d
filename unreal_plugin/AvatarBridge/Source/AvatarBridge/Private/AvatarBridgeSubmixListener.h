// Feeds what a submix renders (downmixed to mono float32) into a stream, from the audio render thread.
#pragma once

#include "CoreMinimal.h"
#include "AudioDevice.h"  // ISubmixBufferListener (its own header since 5.1; AudioDevice.h has it in every 5.x)
#include "Misc/EngineVersionComparison.h"

#include <atomic>

class FAvatarBridgeStream;

class FAvatarBridgeSubmixListener : public ISubmixBufferListener
{
public:
	explicit FAvatarBridgeSubmixListener(TWeakPtr<FAvatarBridgeStream> InStream);

	virtual void OnNewSubmixBuffer(const USoundSubmix* OwningSubmix, float* AudioData, int32 NumSamples,
		int32 NumChannels, const int32 SampleRate, double AudioClock) override;

#if UE_VERSION_NEWER_THAN(5, 3, 99)
	virtual const FString& GetListenerName() const override;
#else
	const FString& GetListenerName() const;
#endif

	/** Seconds of audio delivered so far (the submix's own clock for this stream). */
	double GetCapturedSeconds() const;

private:
	TWeakPtr<FAvatarBridgeStream> Stream;
	TArray<float> Mono;
	std::atomic<int64> CapturedFrames{0};
	std::atomic<int32> Rate{0};
};

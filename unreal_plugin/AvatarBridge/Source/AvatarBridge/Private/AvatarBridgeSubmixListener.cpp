#include "AvatarBridgeSubmixListener.h"

#include "AvatarBridgeStream.h"

FAvatarBridgeSubmixListener::FAvatarBridgeSubmixListener(TWeakPtr<FAvatarBridgeStream> InStream)
	: Stream(MoveTemp(InStream))
{
}

void FAvatarBridgeSubmixListener::OnNewSubmixBuffer(const USoundSubmix* OwningSubmix, float* AudioData, int32 NumSamples,
	int32 NumChannels, const int32 SampleRate, double AudioClock)
{
	TSharedPtr<FAvatarBridgeStream> Pinned = Stream.Pin();
	if (!Pinned.IsValid() || NumChannels <= 0)
	{
		return;
	}
	const int32 Frames = NumSamples / NumChannels;
	if (Mono.Num() < Frames)
	{
		Mono.SetNumUninitialized(Frames);  // grows once to the render buffer size, never shrinks
	}
	for (int32 i = 0; i < Frames; ++i)
	{
		float Sum = 0.f;
		for (int32 c = 0; c < NumChannels; ++c)
		{
			Sum += AudioData[i * NumChannels + c];
		}
		Mono[i] = FMath::Clamp(Sum / NumChannels, -1.f, 1.f);
	}
	Rate = SampleRate;
	CapturedFrames += Frames;
	Pinned->PushAudio(Mono.GetData(), Frames * static_cast<int32>(sizeof(float)));
}

const FString& FAvatarBridgeSubmixListener::GetListenerName() const
{
	static const FString Name(TEXT("AvatarBridgeSubmixListener"));
	return Name;
}

double FAvatarBridgeSubmixListener::GetCapturedSeconds() const
{
	const int32 R = Rate.load();
	return R > 0 ? static_cast<double>(CapturedFrames.load()) / R : 0.0;
}

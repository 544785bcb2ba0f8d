// One stream = one core LiveSession (gRPC, reconnects) + one PosePlayer (jitter buffer on the audio
// clock) + one Live Link subject. Audio goes in from any thread; Publish() runs on the game thread.
#pragma once

#include "CoreMinimal.h"
#include "LiveLinkTypes.h"
#include "AvatarBridgeTypes.h"

#include "avatarbridge/ArkitCurves.h"
#include "avatarbridge/LiveSession.h"
#include "avatarbridge/PosePlayer.h"

#include <atomic>
#include <memory>
#include <mutex>

class ILiveLinkClient;

class FAvatarBridgeStream : public TSharedFromThis<FAvatarBridgeStream>
{
public:
	FAvatarBridgeStream(ILiveLinkClient* InClient, FGuid InSourceGuid, FName InSubject, const FString& ServerAddress,
		const FAvatarBridgeStreamSettings& InSettings, int32 SampleRate, int32 NumChannels, bool bFloat32,
		double MaxBufferedSeconds, const avatarbridge::ClientOptions& ClientOptions = {});
	~FAvatarBridgeStream();

	void Start();
	/** Interleaved audio in the stream's format; any thread, never blocks. */
	void PushAudio(const void* Data, int32 Bytes);
	/** No more audio: the rest is animated, then the stream finishes. */
	void EndAudio();
	/** Cancel now and remove the subject. */
	void Stop();

	/** Look-ahead (from the stream header) + the jitter budget, in seconds; negative until the header came. */
	double GetStartDelaySeconds() const;
	/** FPlatformTime::Seconds() when the first audio left for the server (pushed audio waits while
	 *  connecting); false until then. Live playback is scheduled from here. */
	bool GetFirstSentPlatformSeconds(double& OutSeconds) const;
	/** Play time of the newest frame received (seconds on the audio clock), -1 if none. */
	double GetNewestFrameTime() const;

	/** Evaluates the pose at AudioTime (seconds since the first pushed sample, as heard) and pushes it. Game thread. */
	void Publish(double AudioTime);

	EAvatarBridgeStatus GetStatus() const;
	FString GetStatusText() const;
	FName GetSubjectName() const { return SubjectKey.SubjectName; }
	const FAvatarBridgeStreamSettings& GetSettings() const { return Settings; }

private:
	class FObserver;

	void PushStaticData();

	ILiveLinkClient* Client;
	FLiveLinkSubjectKey SubjectKey;
	FAvatarBridgeStreamSettings Settings;
	int32 SampleRate;

	std::unique_ptr<FObserver> Observer;
	std::unique_ptr<avatarbridge::PosePlayer> Player;
	std::unique_ptr<avatarbridge::LiveSession> Session;

	mutable std::mutex Mutex;  // guards the members below, written from the session thread
	avatarbridge::StreamHeaderInfo Header;
	bool bHaveHeader = false;
	avatarbridge::CurveMap CurveMap;
	TArray<int32> BoneSlots;  // header bone i -> canonical slot (-1 = not ours)
	std::string LastDetail;
	std::string LastWarning;

	bool bStaticPushed = false;
	bool bReportedNames = false;
	TArray<FName> CurveNames;
	std::atomic<double> NewestFrameTime{-1.0};
};

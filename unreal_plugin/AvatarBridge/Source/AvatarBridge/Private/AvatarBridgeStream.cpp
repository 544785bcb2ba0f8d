#include "AvatarBridgeStream.h"

#include "AvatarBridgeModule.h"
#include "ILiveLinkClient.h"
#include "Roles/LiveLinkAnimationRole.h"
#include "Roles/LiveLinkAnimationTypes.h"
#include "Roles/LiveLinkBasicRole.h"

#include "avatarbridge/UnrealConversion.h"

#include <algorithm>
#include <chrono>

namespace
{
EAvatarBridgeStatus ToStatus(avatarbridge::SessionState State)
{
	switch (State)
	{
	case avatarbridge::SessionState::Idle: return EAvatarBridgeStatus::Idle;
	case avatarbridge::SessionState::Connecting: return EAvatarBridgeStatus::Connecting;
	case avatarbridge::SessionState::Streaming: return EAvatarBridgeStatus::Streaming;
	case avatarbridge::SessionState::Backoff: return EAvatarBridgeStatus::Reconnecting;
	case avatarbridge::SessionState::Finished: return EAvatarBridgeStatus::Finished;
	case avatarbridge::SessionState::Failed: return EAvatarBridgeStatus::Failed;
	}
	return EAvatarBridgeStatus::Idle;
}

FQuat ToFQuat(const avatarbridge::Quat& Canonical)
{
	const avatarbridge::Quat Q = avatarbridge::ToUnrealQuat(Canonical);
	return FQuat(Q.x, Q.y, Q.z, Q.w);
}
}  // namespace

/** Session callbacks (session thread): header -> name maps, frames -> the jitter buffer in canonical order. */
class FAvatarBridgeStream::FObserver : public avatarbridge::SessionObserver
{
public:
	explicit FObserver(FAvatarBridgeStream* InOwner) : Owner(InOwner) {}

	virtual void OnState(avatarbridge::SessionState State, const std::string& Detail) override
	{
		std::lock_guard<std::mutex> Lock(Owner->Mutex);
		Owner->LastDetail = std::string(avatarbridge::SessionStateName(State)) + (Detail.empty() ? "" : ": " + Detail);
	}

	virtual void OnHeader(const avatarbridge::StreamHeaderInfo& Header) override
	{
		std::lock_guard<std::mutex> Lock(Owner->Mutex);
		Owner->Header = Header;
		Owner->bHaveHeader = true;
		Owner->CurveMap = avatarbridge::CurveMap(Header.blendshape_names);
		const auto& Canon = avatarbridge::CanonicalBoneNames();
		Owner->BoneSlots.Reset();
		for (const std::string& Bone : Header.bone_names)
		{
			const auto It = std::find(Canon.begin(), Canon.end(), Bone);
			Owner->BoneSlots.Add(It == Canon.end() ? -1 : static_cast<int32>(It - Canon.begin()));
		}
	}

	virtual void OnFrames(std::vector<avatarbridge::TimedFrame>& Frames) override
	{
		avatarbridge::CurveMap Map;
		TArray<int32> Slots;
		{
			std::lock_guard<std::mutex> Lock(Owner->Mutex);
			Map = Owner->CurveMap;
			Slots = Owner->BoneSlots;
		}
		for (avatarbridge::TimedFrame& TF : Frames)
		{
			std::vector<float> Weights52;
			Map.Apply(TF.frame.weights, Weights52);
			std::vector<avatarbridge::Quat> Bones(4);
			for (int32 i = 0; i < Slots.Num() && i < static_cast<int32>(TF.frame.rotations.size()); ++i)
			{
				if (Slots[i] >= 0) Bones[Slots[i]] = TF.frame.rotations[i];
			}
			TF.frame.weights = std::move(Weights52);
			TF.frame.rotations = std::move(Bones);
			Owner->NewestFrameTime = FMath::Max(Owner->NewestFrameTime.load(), TF.play_time);
			Owner->Player->buffer().Push(std::move(TF));
		}
	}

	virtual void OnWarning(const std::string& Text) override
	{
		UE_LOG(LogAvatarBridge, Warning, TEXT("%s: %s"), *Owner->SubjectKey.SubjectName.ToString(), UTF8_TO_TCHAR(Text.c_str()));
		std::lock_guard<std::mutex> Lock(Owner->Mutex);
		Owner->LastWarning = Text;
	}

private:
	FAvatarBridgeStream* Owner;
};

FAvatarBridgeStream::FAvatarBridgeStream(ILiveLinkClient* InClient, FGuid InSourceGuid, FName InSubject,
	const FString& ServerAddress, const FAvatarBridgeStreamSettings& InSettings, int32 InSampleRate, int32 NumChannels,
	bool bFloat32, double MaxBufferedSeconds, const avatarbridge::ClientOptions& ClientOptions)
	: Client(InClient), SubjectKey(InSourceGuid, InSubject), Settings(InSettings), SampleRate(InSampleRate)
{
	avatarbridge::StallPolicy Policy;
	Policy.hold_s = Settings.StallHoldSeconds;
	Policy.ease_s = Settings.StallEaseSeconds;
	const size_t Capacity = static_cast<size_t>(FMath::Max(20.0, MaxBufferedSeconds + 5.0) * Settings.Fps);
	Player = std::make_unique<avatarbridge::PosePlayer>(52, 4, static_cast<double>(Settings.Fps), Policy, Capacity);

	avatarbridge::SessionOptions Options;
	Options.target = TCHAR_TO_UTF8(*ServerAddress);
	Options.max_buffered_seconds = MaxBufferedSeconds;
	Options.min_chunk_ms = Settings.SendChunkMs;
	Options.client = ClientOptions;  // TLS CA and bearer token of the source
	avatarbridge::StreamSettings& S = Options.settings;
	S.encoding = bFloat32 ? avatarbridge::AudioEncoding::Float32 : avatarbridge::AudioEncoding::Pcm16;
	S.sample_rate = static_cast<uint32_t>(InSampleRate);
	S.channels = static_cast<uint32_t>(NumChannels);
	S.fps = static_cast<uint32_t>(Settings.Fps);
	S.stream_id = TCHAR_TO_UTF8(*InSubject.ToString());
	S.engine = TCHAR_TO_UTF8(*Settings.Engine);
	S.style.emotion = static_cast<avatarbridge::Emotion>(Settings.Emotion);
	S.style.emotion_strength = Settings.EmotionStrength;
	S.style.intensity = Settings.Intensity;
	S.style.head_motion = Settings.HeadMotion;

	Observer = std::make_unique<FObserver>(this);
	Session = std::make_unique<avatarbridge::LiveSession>(Options, Observer.get());

	for (const std::string& Name : avatarbridge::CurveMap(avatarbridge::CanonicalArkitNames()).unreal_names())
	{
		CurveNames.Add(FName(UTF8_TO_TCHAR(Name.c_str())));
	}
	for (const std::string& Name : avatarbridge::LiveLinkFaceAngleCurveNames())
	{
		CurveNames.Add(FName(UTF8_TO_TCHAR(Name.c_str())));
	}
}

FAvatarBridgeStream::~FAvatarBridgeStream()
{
	Stop();
}

void FAvatarBridgeStream::Start()
{
	Session->Start();
}

void FAvatarBridgeStream::PushAudio(const void* Data, int32 Bytes)
{
	if (Bytes > 0)
	{
		Session->PushAudio(Data, static_cast<size_t>(Bytes));
	}
}

void FAvatarBridgeStream::EndAudio()
{
	Session->EndAudio();
}

void FAvatarBridgeStream::Stop()
{
	if (Session)
	{
		Session->Stop();
	}
	if (Client && bStaticPushed)
	{
		Client->RemoveSubject_AnyThread(SubjectKey);
		bStaticPushed = false;
	}
}

double FAvatarBridgeStream::GetStartDelaySeconds() const
{
	std::lock_guard<std::mutex> Lock(Mutex);
	if (!bHaveHeader)
	{
		return -1.0;
	}
	avatarbridge::PlaybackSchedule Schedule;
	Schedule.lookahead_ms = Header.lookahead_ms;
	Schedule.jitter_ms = Settings.JitterBufferMs;
	return Schedule.StartDelaySeconds();
}

bool FAvatarBridgeStream::GetFirstSentPlatformSeconds(double& OutSeconds) const
{
	std::chrono::steady_clock::time_point When;
	if (!Session->first_sent_at(&When))
	{
		return false;
	}
	const double Ago = std::chrono::duration<double>(std::chrono::steady_clock::now() - When).count();
	OutSeconds = FPlatformTime::Seconds() - Ago;
	return true;
}

double FAvatarBridgeStream::GetNewestFrameTime() const
{
	return NewestFrameTime.load();
}

EAvatarBridgeStatus FAvatarBridgeStream::GetStatus() const
{
	return ToStatus(Session->state());
}

FString FAvatarBridgeStream::GetStatusText() const
{
	std::lock_guard<std::mutex> Lock(Mutex);
	FString Text = UTF8_TO_TCHAR(LastDetail.c_str());
	if (!LastWarning.empty())
	{
		Text += TEXT(" | ") + FString(UTF8_TO_TCHAR(LastWarning.c_str()));
	}
	return Text;
}

void FAvatarBridgeStream::PushStaticData()
{
	{
		std::lock_guard<std::mutex> Lock(Mutex);
		if (!bReportedNames && (!CurveMap.unknown().empty() || !CurveMap.missing().empty()))
		{
			// Names we cannot place: ignored, and said once per stream.
			for (const std::string& Name : CurveMap.unknown())
			{
				UE_LOG(LogAvatarBridge, Warning, TEXT("%s: the server sent curve '%s', which is not an ARKit-52 name; ignored"),
					*SubjectKey.SubjectName.ToString(), UTF8_TO_TCHAR(Name.c_str()));
			}
			for (const std::string& Name : CurveMap.missing())
			{
				UE_LOG(LogAvatarBridge, Warning, TEXT("%s: the server sends no '%s'; it stays at 0"),
					*SubjectKey.SubjectName.ToString(), UTF8_TO_TCHAR(Name.c_str()));
			}
		}
		bReportedNames = true;
	}
	if (Settings.Role == EAvatarBridgeRole::Animation)
	{
		FLiveLinkStaticDataStruct StaticData(FLiveLinkSkeletonStaticData::StaticStruct());
		FLiveLinkSkeletonStaticData& Skeleton = *StaticData.Cast<FLiveLinkSkeletonStaticData>();
		TArray<FName> Bones;
		for (const std::string& Name : avatarbridge::CanonicalBoneNames())
		{
			Bones.Add(FName(UTF8_TO_TCHAR(Name.c_str())));
		}
		Skeleton.SetBoneNames(Bones);
		Skeleton.SetBoneParents({1, -1, 0, 0});  // Head <- Neck (root); eyes <- Head
		Skeleton.PropertyNames = CurveNames;
		Client->PushSubjectStaticData_AnyThread(SubjectKey, ULiveLinkAnimationRole::StaticClass(), MoveTemp(StaticData));
	}
	else
	{
		FLiveLinkStaticDataStruct StaticData(FLiveLinkBaseStaticData::StaticStruct());
		StaticData.Cast<FLiveLinkBaseStaticData>()->PropertyNames = CurveNames;
		Client->PushSubjectStaticData_AnyThread(SubjectKey, ULiveLinkBasicRole::StaticClass(), MoveTemp(StaticData));
	}
	bStaticPushed = true;
}

void FAvatarBridgeStream::Publish(double AudioTime)
{
	if (!Client)
	{
		return;
	}
	{
		std::lock_guard<std::mutex> Lock(Mutex);
		if (!bHaveHeader)
		{
			return;
		}
	}
	if (!bStaticPushed)
	{
		PushStaticData();
	}
	const avatarbridge::PlayerOutput Out = Player->Evaluate(AudioTime);
	const std::vector<avatarbridge::Quat>& R = Out.pose.rotations;  // Head, Neck, LeftEye, RightEye
	// The 61 values livelinkface:// sends (its default mirror=1, the Live Link Face app's convention): the
	// weights with Left/Right swapped, then the 9 angles in radians. The MetaHuman face Anim Blueprint reads
	// the app's convention, so a subject looks the same from this plugin and from the plugin-free path.
	const std::vector<float> Curves = avatarbridge::LiveLinkFaceCurves(Out.pose.weights, R[0], R[1], R[2], R[3]);

	TArray<float> Values;
	Values.Reserve(CurveNames.Num());
	for (float V : Curves)
	{
		Values.Add(V);
	}
	const FQualifiedFrameTime SceneTime(FFrameTime::FromDecimal(FMath::Max(0.0, AudioTime) * Settings.Fps),
		FFrameRate(Settings.Fps, 1));

	if (Settings.Role == EAvatarBridgeRole::Animation)
	{
		FLiveLinkFrameDataStruct FrameData(FLiveLinkAnimationFrameData::StaticStruct());
		FLiveLinkAnimationFrameData& Anim = *FrameData.Cast<FLiveLinkAnimationFrameData>();
		Anim.WorldTime = FLiveLinkWorldTime(FPlatformTime::Seconds());
		Anim.MetaData.SceneTime = SceneTime;
		Anim.PropertyValues = MoveTemp(Values);
		for (const avatarbridge::Quat& Q : R)
		{
			// Rest-relative rotations, identity translation (unreal_plugin/README.md, "Roles").
			Anim.Transforms.Add(FTransform(ToFQuat(Q)));
		}
		Client->PushSubjectFrameData_AnyThread(SubjectKey, MoveTemp(FrameData));
	}
	else
	{
		FLiveLinkFrameDataStruct FrameData(FLiveLinkBaseFrameData::StaticStruct());
		FLiveLinkBaseFrameData& Base = *FrameData.Cast<FLiveLinkBaseFrameData>();
		Base.WorldTime = FLiveLinkWorldTime(FPlatformTime::Seconds());
		Base.MetaData.SceneTime = SceneTime;
		Base.PropertyValues = MoveTemp(Values);
		Client->PushSubjectFrameData_AnyThread(SubjectKey, MoveTemp(FrameData));
	}
}

// Blueprint-facing settings and states of an Avatar Bridge stream.
#pragma once

#include "CoreMinimal.h"
#include "AvatarBridgeTypes.generated.h"

/** Which Live Link role a stream's subject uses (unreal_plugin/README.md, "Roles"). */
UENUM(BlueprintType)
enum class EAvatarBridgeRole : uint8
{
	/** Curves only: the 52 ARKit curves (JawOpen, ...) + HeadYaw/Pitch/Roll and eye angles, exactly like
	 *  the Live Link Face app (and the server's livelinkface:// output): angles in radians, weights swapped
	 *  Left/Right as the app sends them. What a MetaHuman face Anim Blueprint (LLink Face Subj) reads. */
	Basic,
	/** Bones Neck, Head, LeftEye, RightEye (Unreal space) + the same curves, for custom rigs
	 *  driven by a Live Link Pose node with a remap asset. */
	Animation,
};

UENUM(BlueprintType)
enum class EAvatarBridgeEmotion : uint8
{
	Neutral, Happy, Sad, Angry, Surprised,
};

/** Where a stream stands (mirrors the core's session state). */
UENUM(BlueprintType)
enum class EAvatarBridgeStatus : uint8
{
	Idle, Connecting, Streaming, Reconnecting, Finished, Failed,
};

/**
 * How to reach a secured server (docs/security.md): serve --tls-cert/--tls-key (TLS) and/or --auth-token-file
 * (bearer tokens). Both empty = plaintext without a token, as a server on this machine needs.
 */
USTRUCT(BlueprintType)
struct AVATARBRIDGE_API FAvatarBridgeSecurity
{
	GENERATED_BODY()

	/** CA certificate file (PEM) that signed the server's certificate: connect with TLS. Empty = plaintext. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Avatar Bridge|Security")
	FString TlsCaFile;

	/** File whose first line is the bearer token the server accepts. Empty = no token. Keep it out of Content/. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Avatar Bridge|Security")
	FString AuthTokenFile;

	bool operator==(const FAvatarBridgeSecurity& Other) const
	{
		return TlsCaFile == Other.TlsCaFile && AuthTokenFile == Other.AuthTokenFile;
	}
	bool operator!=(const FAvatarBridgeSecurity& Other) const { return !(*this == Other); }
};

/** What each stream asks the server for, and how the client plays it. */
USTRUCT(BlueprintType)
struct AVATARBRIDGE_API FAvatarBridgeStreamSettings
{
	GENERATED_BODY()

	/** 30 or 60. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Avatar Bridge", meta = (ClampMin = 30, ClampMax = 60))
	int32 Fps = 60;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Avatar Bridge")
	EAvatarBridgeEmotion Emotion = EAvatarBridgeEmotion::Neutral;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Avatar Bridge", meta = (ClampMin = 0, ClampMax = 1))
	float EmotionStrength = 0.5f;

	/** Mouth articulation, 1 = natural. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Avatar Bridge", meta = (ClampMin = 0, ClampMax = 2))
	float Intensity = 1.f;

	/** Head and eye motion, 0 = still head. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Avatar Bridge", meta = (ClampMin = 0, ClampMax = 2))
	float HeadMotion = 1.f;

	/** Empty = the server's default engine. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Avatar Bridge")
	FString Engine;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Avatar Bridge")
	EAvatarBridgeRole Role = EAvatarBridgeRole::Basic;

	/** Network/scheduling budget added to the server's look-ahead before audio starts (ms). */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Avatar Bridge|Latency", meta = (ClampMin = 0, ClampMax = 2000))
	float JitterBufferMs = 100.f;

	/** A stalled stream keeps the last pose this long (s), then eases to neutral. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Avatar Bridge|Latency", meta = (ClampMin = 0))
	float StallHoldSeconds = 0.25f;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Avatar Bridge|Latency", meta = (ClampMin = 0))
	float StallEaseSeconds = 0.5f;

	/** Audio is sent in messages of at least this many ms (0 = as pushed). Larger messages let one server carry
	 *  more streams (many NPCs): 200 per 2 cores with 100 ms, 100-150 with 40 ms. It delays live audio by up to
	 *  this much, so keep 0 for a microphone that needs the least delay. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Avatar Bridge|Latency", meta = (ClampMin = 0, ClampMax = 1000))
	float SendChunkMs = 0.f;
};

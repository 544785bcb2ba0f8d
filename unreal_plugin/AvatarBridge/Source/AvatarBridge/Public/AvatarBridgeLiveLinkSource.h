// A Live Link source connected to one avatar-bridge server. Each stream on it publishes one subject
// (PushSubjectStaticData_AnyThread / PushSubjectFrameData_AnyThread). gRPC stays in the core (pimpl).
#pragma once

#include "CoreMinimal.h"
#include "ILiveLinkSource.h"
#include "AvatarBridgeTypes.h"

class ILiveLinkClient;
class FAvatarBridgeStream;
class FAvatarBridgeServerProbe;

class AVATARBRIDGE_API FAvatarBridgeLiveLinkSource : public ILiveLinkSource, public TSharedFromThis<FAvatarBridgeLiveLinkSource>
{
public:
	explicit FAvatarBridgeLiveLinkSource(const FString& InServerAddress,
		const FAvatarBridgeStreamSettings& InDefaultStream = FAvatarBridgeStreamSettings(),
		const FAvatarBridgeSecurity& InSecurity = FAvatarBridgeSecurity());
	virtual ~FAvatarBridgeLiveLinkSource() override;

	// ILiveLinkSource
	virtual void ReceiveClient(ILiveLinkClient* InClient, FGuid InSourceGuid) override;
	virtual void InitializeSettings(ULiveLinkSourceSettings* Settings) override;
	virtual void Update() override;
	virtual bool IsSourceStillValid() const override;
	virtual bool RequestSourceShutdown() override;
	virtual FText GetSourceType() const override;
	virtual FText GetSourceMachineName() const override;
	virtual FText GetSourceStatus() const override;
	virtual TSubclassOf<ULiveLinkSourceSettings> GetSettingsClass() const override;
	virtual void OnSettingsChanged(ULiveLinkSourceSettings* Settings, const FPropertyChangedEvent& PropertyChangedEvent) override;

	const FString& GetServerAddress() const { return ServerAddress; }
	const FAvatarBridgeSecurity& GetSecurity() const { return Security; }
	const FAvatarBridgeStreamSettings& GetDefaultStreamSettings() const { return DefaultStream; }

	/**
	 * Opens a stream that publishes the subject SubjectName on this source. Audio: SampleRate Hz,
	 * NumChannels, PCM16 or float32 interleaved; MaxBufferedSeconds of audio wait while the server is
	 * away. Returns null when the source has no Live Link client yet.
	 */
	TSharedPtr<FAvatarBridgeStream> OpenStream(FName SubjectName, const FAvatarBridgeStreamSettings& Settings,
		int32 SampleRate, int32 NumChannels, bool bFloat32, double MaxBufferedSeconds);

	/** Stops the stream and removes its subject. */
	void CloseStream(const TSharedPtr<FAvatarBridgeStream>& Stream);

private:
	/** (Re)starts the status probe with the current address and security; a bad token file is kept in SecurityError. */
	void Reconnect();

	FString ServerAddress;
	FAvatarBridgeSecurity Security;
	FString SecurityError;  // why Security cannot be used (an unreadable token file); streams are refused meanwhile
	FAvatarBridgeStreamSettings DefaultStream;
	ILiveLinkClient* Client = nullptr;
	FGuid SourceGuid;
	bool bShuttingDown = false;

	TUniquePtr<FAvatarBridgeServerProbe> Probe;
	mutable FCriticalSection StreamsLock;
	TArray<TSharedPtr<FAvatarBridgeStream>> Streams;
};

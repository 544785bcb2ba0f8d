// Checks in the background whether the source's server answers, for the Live Link panel's status.
#pragma once

#include "CoreMinimal.h"

#include "avatarbridge/BridgeClient.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

class FAvatarBridgeServerProbe
{
public:
	explicit FAvatarBridgeServerProbe(const FString& ServerAddress, const avatarbridge::ClientOptions& InOptions = {});
	~FAvatarBridgeServerProbe();  // stops and joins

	/** "Connected: learned-v2, look-ahead 93 ms (server 0.1.0)" or why it is not. */
	FString GetStatus() const;
	bool IsReachable() const { return bReachable.load(); }

private:
	void Run();

	std::string Target;
	avatarbridge::ClientOptions Options;
	std::atomic<bool> bReachable{false};
	mutable std::mutex Mutex;
	std::condition_variable Wake;
	bool bStop = false;
	std::string Status;
	std::thread Thread;
};

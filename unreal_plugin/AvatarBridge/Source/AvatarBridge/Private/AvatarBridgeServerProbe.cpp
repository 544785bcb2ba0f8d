#include "AvatarBridgeServerProbe.h"

#include "avatarbridge/BridgeClient.h"

#include <chrono>
#include <cstdio>

FAvatarBridgeServerProbe::FAvatarBridgeServerProbe(const FString& ServerAddress, const avatarbridge::ClientOptions& InOptions)
	: Target(TCHAR_TO_UTF8(*ServerAddress)), Options(InOptions), Status("Connecting to " + Target)
{
	Thread = std::thread([this] { Run(); });
}

FAvatarBridgeServerProbe::~FAvatarBridgeServerProbe()
{
	{
		std::lock_guard<std::mutex> Lock(Mutex);
		bStop = true;
	}
	Wake.notify_all();
	if (Thread.joinable())
	{
		Thread.join();
	}
}

FString FAvatarBridgeServerProbe::GetStatus() const
{
	std::lock_guard<std::mutex> Lock(Mutex);
	return FString(UTF8_TO_TCHAR(Status.c_str()));
}

void FAvatarBridgeServerProbe::Run()
{
	avatarbridge::BridgeClient Client(Target, Options);
	while (true)
	{
		avatarbridge::CapabilitiesInfo Caps;
		const avatarbridge::CallStatus Result = Client.GetCapabilities(&Caps, std::chrono::milliseconds(1500));
		std::string Text;
		if (Result.ok())
		{
			char Buf[256];
			std::snprintf(Buf, sizeof(Buf), "Connected: %s, look-ahead %.0f ms (server %s, %s)", Caps.default_engine.c_str(),
				Caps.default_lookahead_ms, Caps.server_version.c_str(), Caps.api_version.c_str());
			Text = Buf;
		}
		else
		{
			Text = "Cannot reach " + Target + " (" + Result.ToString() + "); retrying";
		}
		bReachable = Result.ok();
		std::unique_lock<std::mutex> Lock(Mutex);
		Status = Text;
		if (Wake.wait_for(Lock, std::chrono::seconds(2), [this] { return bStop; }))
		{
			return;
		}
	}
}

#include "AvatarBridgeSecurity.h"

#include <string>

bool AvatarBridgeClientOptions(const FAvatarBridgeSecurity& In, avatarbridge::ClientOptions& Out, FString& OutError)
{
	Out.tls_ca_file = TCHAR_TO_UTF8(*In.TlsCaFile.TrimStartAndEnd());
	Out.auth_token.clear();
	const FString TokenFile = In.AuthTokenFile.TrimStartAndEnd();
	if (TokenFile.IsEmpty())
	{
		return true;
	}
	std::string Token, Error;
	if (!avatarbridge::ReadTokenFile(TCHAR_TO_UTF8(*TokenFile), &Token, &Error))
	{
		OutError = UTF8_TO_TCHAR(Error.c_str());
		return false;
	}
	Out.auth_token = Token;
	return true;
}

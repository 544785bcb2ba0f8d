// FAvatarBridgeSecurity (file paths, editable in the editor) -> the core's ClientOptions (CA path, token text).
#pragma once

#include "CoreMinimal.h"
#include "AvatarBridgeTypes.h"

#include "avatarbridge/BridgeClient.h"

/**
 * Fills Out's TLS CA file and bearer token from In (the token file is read here; the core reads the CA file and
 * reports a bad one as BridgeClient::SetupError). False, with OutError naming the file (never the token), when
 * the token file cannot be read or holds no token.
 */
bool AvatarBridgeClientOptions(const FAvatarBridgeSecurity& In, avatarbridge::ClientOptions& Out, FString& OutError);

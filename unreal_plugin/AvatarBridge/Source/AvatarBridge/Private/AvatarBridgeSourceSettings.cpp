#include "AvatarBridgeSourceSettings.h"

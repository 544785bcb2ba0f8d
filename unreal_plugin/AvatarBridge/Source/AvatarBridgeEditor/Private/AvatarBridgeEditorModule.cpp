// The editor module: the Live Link source factory (UAvatarBridgeSourceFactory) is found by Live Link
// through reflection, so the module itself only has to exist.
#include "Modules/ModuleManager.h"

IMPLEMENT_MODULE(FDefaultModuleImpl, AvatarBridgeEditor)

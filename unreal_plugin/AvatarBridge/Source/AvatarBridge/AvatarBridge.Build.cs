using UnrealBuildTool;

public class AvatarBridge : ModuleRules
{
	public AvatarBridge(ReadOnlyTargetRules Target) : base(Target)
	{
		PCHUsage = PCHUsageMode.UseExplicitOrSharedPCHs;
		CppStandard = CppStandardVersion.Cpp17;

		PublicDependencyModuleNames.AddRange(new string[]
		{
			"Core", "CoreUObject", "Engine", "LiveLinkInterface", "AudioMixer", "AudioMixerCore",
		});
		PrivateDependencyModuleNames.AddRange(new string[]
		{
			"LiveLink", "AudioExtensions", "SignalProcessing", "AvatarBridgeCore",
		});
	}
}

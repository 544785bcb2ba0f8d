using UnrealBuildTool;

public class AvatarBridgeEditor : ModuleRules
{
	public AvatarBridgeEditor(ReadOnlyTargetRules Target) : base(Target)
	{
		PCHUsage = PCHUsageMode.UseExplicitOrSharedPCHs;

		PublicDependencyModuleNames.AddRange(new string[] { "Core", "CoreUObject", "Engine", "LiveLinkInterface" });
		PrivateDependencyModuleNames.AddRange(new string[]
		{
			"AvatarBridge", "AvatarBridgeCore", "LiveLink", "LiveLinkEditor", "Slate", "SlateCore", "InputCore", "UnrealEd",
		});
	}
}

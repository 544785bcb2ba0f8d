// The engine-independent C++ core (unreal_plugin/core) and the gRPC / protobuf / abseil static
// libraries it links, prebuilt per platform (unreal_plugin/README.md, "Building the gRPC libraries").
// Layout, written by `cmake --install` of the core plus the copy step of the README:
//   include/avatarbridge/*.h          the core's public headers (no gRPC types: pimpl)
//   lib/<Platform>/*.lib|*.a          avatarbridge_core + grpc++, grpc, gpr, upb, address_sorting,
//                                     protobuf, absl_*, re2, cares, utf8_range (not OpenSSL/zlib: the engine's)
using System.IO;
using System.Linq;
using UnrealBuildTool;

public class AvatarBridgeCore : ModuleRules
{
	public AvatarBridgeCore(ReadOnlyTargetRules Target) : base(Target)
	{
		Type = ModuleType.External;

		string IncludeDir = Path.Combine(ModuleDirectory, "include");
		string LibDir = Path.Combine(ModuleDirectory, "lib", Target.Platform.ToString());
		PublicSystemIncludePaths.Add(IncludeDir);

		if (!Directory.Exists(LibDir) || !File.Exists(Path.Combine(IncludeDir, "avatarbridge", "BridgeClient.h")))
		{
			throw new BuildException(
				"AvatarBridgeCore: no prebuilt libraries in " + LibDir + ". Build them once per platform with " +
				"unreal_plugin/core (see unreal_plugin/README.md, 'Building the gRPC libraries').");
		}

		// gRPC's TLS and compression come from the engine's own OpenSSL and zlib (one copy per process);
		// the libraries here must have been built against them (README), and carry no copies of their own.
		AddEngineThirdPartyPrivateStaticDependencies(Target, "OpenSSL", "zlib");

		string Ext = Target.Platform == UnrealTargetPlatform.Win64 ? "*.lib" : "*.a";
		// Every static library of the folder: the abseil set differs between gRPC versions.
		foreach (string Lib in Directory.GetFiles(LibDir, Ext).OrderBy(f => f))
		{
			PublicAdditionalLibraries.Add(Lib);
		}

		if (Target.Platform == UnrealTargetPlatform.Win64)
		{
			PublicSystemLibraries.AddRange(new string[] { "ws2_32.lib", "crypt32.lib", "iphlpapi.lib", "bcrypt.lib", "advapi32.lib" });
			PublicDefinitions.Add("_WIN32_WINNT=0x0A00");
		}
		else if (Target.Platform == UnrealTargetPlatform.Mac)
		{
			PublicFrameworks.AddRange(new string[] { "CoreFoundation", "Security" });
		}
		// One copy of gRPC per process: nothing else in the project may link its own gRPC/protobuf
		// (TurboLink and similar plugins ship the same libraries; use one set for all of them).
	}
}

#include "AvatarBridgeBlueprintLibrary.h"

#include "Audio.h"
#include "Misc/FileHelper.h"

#include "avatarbridge/ArkitCurves.h"

bool UAvatarBridgeBlueprintLibrary::LoadWavFile(const FString& Path, TArray<uint8>& OutPCM16, int32& OutSampleRate,
	int32& OutNumChannels, FString& OutError)
{
	TArray<uint8> File;
	if (!FFileHelper::LoadFileToArray(File, *Path))
	{
		OutError = FString::Printf(TEXT("cannot read %s"), *Path);
		return false;
	}
	FWaveModInfo Info;
	if (!Info.ReadWaveInfo(File.GetData(), File.Num(), &OutError))
	{
		return false;
	}
	if (*Info.pFormatTag != 1 || *Info.pBitsPerSample != 16)
	{
		OutError = FString::Printf(TEXT("%s is not PCM16 (format %d, %d bits); convert it to 16-bit PCM"), *Path,
			static_cast<int32>(*Info.pFormatTag), static_cast<int32>(*Info.pBitsPerSample));
		return false;
	}
	OutSampleRate = static_cast<int32>(*Info.pSamplesPerSec);
	OutNumChannels = static_cast<int32>(*Info.pChannels);
	OutPCM16 = TArray<uint8>(Info.SampleDataStart, static_cast<int32>(Info.SampleDataSize));
	return true;
}

FName UAvatarBridgeBlueprintLibrary::ToUnrealCurveName(const FString& ArkitName)
{
	return FName(UTF8_TO_TCHAR(avatarbridge::ToUnrealCurveName(TCHAR_TO_UTF8(*ArkitName)).c_str()));
}

TArray<FName> UAvatarBridgeBlueprintLibrary::GetSubjectCurveNames()
{
	TArray<FName> Names;
	for (const std::string& N : avatarbridge::CanonicalArkitNames())
	{
		Names.Add(FName(UTF8_TO_TCHAR(avatarbridge::ToUnrealCurveName(N).c_str())));
	}
	for (const std::string& N : avatarbridge::LiveLinkFaceAngleCurveNames())
	{
		Names.Add(FName(UTF8_TO_TCHAR(N.c_str())));
	}
	return Names;
}

// ARKit-52 curve names: the canonical table (read from the contract, never copied) and the
// mapping to the names Unreal's ARKit pipeline uses (EARFaceBlendShape: PascalCase, e.g. JawOpen).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace avatarbridge {

/** The 52 camelCase names in the canonical order, read from the ArkitBlendshape enum's
 *  (arkit_name) options of proto/avatarbridge/v1/bridge.proto (compiled in). */
const std::vector<std::string>& CanonicalArkitNames();

/** The canonical bone names (the Bone enum): Head, Neck, LeftEye, RightEye. */
const std::vector<std::string>& CanonicalBoneNames();

/** "jawOpen" -> "JawOpen": Unreal's EARFaceBlendShape / Live Link Face curve name. */
std::string ToUnrealCurveName(const std::string& arkit_name);

/** The 9 extra Live Link Face curves, in packet order: HeadYaw, HeadPitch, HeadRoll,
 *  LeftEyeYaw, LeftEyePitch, LeftEyeRoll, RightEyeYaw, RightEyePitch, RightEyeRoll. */
const std::vector<std::string>& LiveLinkFaceAngleCurveNames();

/** The Live Link Face app's Left/Right swap of the 52 weights (the server's livelinkface:// `mirror=1`):
 *  for canonical column k, the canonical slot whose weight that column carries. Each name ending in
 *  Left/Right whose counterpart exists is paired with it (eyeBlinkLeft <-> eyeBlinkRight, also
 *  jawLeft <-> jawRight and mouthLeft <-> mouthRight); the others map to themselves. The same rule as
 *  _mirror_index in bridge_server/outputs/livelink_face.py. */
const std::vector<int>& LiveLinkFaceMirrorIndex();

/**
 * Maps a stream header's blendshape names to output curve slots. Header names that are not
 * ARKit-52 names are ignored (their weights are skipped) and listed once in `unknown`; ARKit
 * names the header lacks stay at 0 and are listed in `missing`.
 */
class CurveMap {
 public:
  CurveMap() = default;
  explicit CurveMap(const std::vector<std::string>& header_names);

  /** Output curve names (Unreal PascalCase), always the 52 in canonical order. */
  const std::vector<std::string>& unreal_names() const { return unreal_names_; }
  /** For header slot i: the canonical slot, or -1 when ignored. */
  const std::vector<int>& slots() const { return slots_; }
  const std::vector<std::string>& unknown() const { return unknown_; }
  const std::vector<std::string>& missing() const { return missing_; }

  /** Header-order weights -> the 52 canonical-order weights (clamped to 0..1). */
  void Apply(const std::vector<float>& header_weights, std::vector<float>& out52) const;

 private:
  std::vector<std::string> unreal_names_;
  std::vector<int> slots_;
  std::vector<std::string> unknown_;
  std::vector<std::string> missing_;
};

}  // namespace avatarbridge

#include "avatarbridge/ArkitCurves.h"

#include <algorithm>
#include <cctype>
#include <unordered_map>
#include <utility>

#include "avatarbridge/v1/bridge.pb.h"

namespace avatarbridge {
namespace {

std::vector<std::string> NamesOf(const google::protobuf::EnumDescriptor* e) {
  std::vector<std::string> names;
  for (int i = 0; i < e->value_count(); ++i) {
    const auto* v = e->FindValueByNumber(i);  // the value is the index
    names.push_back(v->options().GetExtension(v1::arkit_name));
  }
  return names;
}

}  // namespace

const std::vector<std::string>& CanonicalArkitNames() {
  static const std::vector<std::string> names = NamesOf(v1::ArkitBlendshape_descriptor());
  return names;
}

const std::vector<std::string>& CanonicalBoneNames() {
  static const std::vector<std::string> names = NamesOf(v1::Bone_descriptor());
  return names;
}

std::string ToUnrealCurveName(const std::string& arkit_name) {
  std::string out = arkit_name;
  if (!out.empty()) out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
  return out;
}

const std::vector<std::string>& LiveLinkFaceAngleCurveNames() {
  static const std::vector<std::string> names = {"HeadYaw",     "HeadPitch",    "HeadRoll",
                                                 "LeftEyeYaw",  "LeftEyePitch", "LeftEyeRoll",
                                                 "RightEyeYaw", "RightEyePitch", "RightEyeRoll"};
  return names;
}

const std::vector<int>& LiveLinkFaceMirrorIndex() {
  static const std::vector<int> perm = [] {
    const auto& names = CanonicalArkitNames();
    std::unordered_map<std::string, int> index;
    for (size_t i = 0; i < names.size(); ++i) index[names[i]] = static_cast<int>(i);
    std::vector<int> p(names.size());
    for (size_t i = 0; i < names.size(); ++i) {
      p[i] = static_cast<int>(i);
      const std::string& n = names[i];
      for (const auto& [from, to] : {std::pair<std::string, std::string>{"Left", "Right"}, {"Right", "Left"}}) {
        if (n.size() > from.size() && n.compare(n.size() - from.size(), from.size(), from) == 0) {
          auto it = index.find(n.substr(0, n.size() - from.size()) + to);
          if (it != index.end()) p[i] = it->second;
        }
      }
    }
    return p;
  }();
  return perm;
}

CurveMap::CurveMap(const std::vector<std::string>& header_names) {
  const auto& canon = CanonicalArkitNames();
  std::unordered_map<std::string, int> index;
  for (size_t i = 0; i < canon.size(); ++i) {
    index[canon[i]] = static_cast<int>(i);
    unreal_names_.push_back(ToUnrealCurveName(canon[i]));
  }
  std::vector<bool> seen(canon.size(), false);
  for (const auto& name : header_names) {
    auto it = index.find(name);
    if (it == index.end() || seen[it->second]) {
      slots_.push_back(-1);
      unknown_.push_back(name);
    } else {
      slots_.push_back(it->second);
      seen[it->second] = true;
    }
  }
  for (size_t i = 0; i < canon.size(); ++i)
    if (!seen[i]) missing_.push_back(canon[i]);
}

void CurveMap::Apply(const std::vector<float>& header_weights, std::vector<float>& out52) const {
  out52.assign(unreal_names_.size(), 0.f);
  const size_t n = std::min(header_weights.size(), slots_.size());
  for (size_t i = 0; i < n; ++i) {
    if (slots_[i] >= 0) out52[slots_[i]] = std::clamp(header_weights[i], 0.f, 1.f);
  }
}

}  // namespace avatarbridge

// Private: protobuf messages <-> the plain types of Types.h, with frame validation.
#pragma once

#include <string>

#include "avatarbridge/Types.h"
#include "avatarbridge/v1/bridge.pb.h"

namespace avatarbridge {

StreamHeaderInfo FromProto(const v1::ExpressionHeader& h);
StreamStatusInfo FromProto(const v1::StreamStatus& s);
void ToProto(const StreamSettings& s, v1::StreamHeader* out);
void ToProto(const ExpressionStyle& s, v1::ExpressionStyle* out);

/**
 * Checks a frame against its header: counts, finite values, weights within 0..1 (a little
 * tolerance), unit quaternions, the next index. On success fills `out`; otherwise returns false
 * and says why in `why`.
 */
bool ConvertFrame(const v1::Frame& f, const StreamHeaderInfo& header, uint64_t expected_index, Frame* out,
                  std::string* why);

}  // namespace avatarbridge

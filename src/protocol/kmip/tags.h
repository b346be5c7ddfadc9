// The KMIP tags of the message envelope (OASIS KMIP Specification 1.4 section 9.1.3.1 "Tags";
// the values are unchanged in 2.0): what a server needs to find the header, the batch items and
// their operation and payload. The operations' own tags come with the operations.
// docs/kmip.md "TTLV (KMIP encoding)".
#pragma once

#include "protocol/kmip/ttlv.h"

namespace custos::kmip::tags {

inline constexpr Tag kBatchCount = 0x42000D;
inline constexpr Tag kBatchItem = 0x42000F;
inline constexpr Tag kCompromiseDate = 0x420020;  // the tag of the specification's examples
inline constexpr Tag kOperation = 0x42005C;
inline constexpr Tag kProtocolVersion = 0x420069;
inline constexpr Tag kProtocolVersionMajor = 0x42006A;
inline constexpr Tag kProtocolVersionMinor = 0x42006B;
inline constexpr Tag kRequestHeader = 0x420077;
inline constexpr Tag kRequestMessage = 0x420078;
inline constexpr Tag kRequestPayload = 0x420079;
inline constexpr Tag kResponseHeader = 0x42007A;
inline constexpr Tag kResponseMessage = 0x42007B;
inline constexpr Tag kResponsePayload = 0x42007C;
inline constexpr Tag kResultStatus = 0x42007F;
inline constexpr Tag kTimeStamp = 0x420092;
inline constexpr Tag kUniqueBatchItemId = 0x420093;
inline constexpr Tag kUniqueIdentifier = 0x420094;

// The ranges of valid tags: the specification's and the extensions'.
inline constexpr Tag kFirstStandardTag = 0x420001;  // 0x420000 is unused
inline constexpr Tag kLastStandardTag = 0x42FFFF;
inline constexpr Tag kFirstExtensionTag = 0x540000;
inline constexpr Tag kLastExtensionTag = 0x54FFFF;

}  // namespace custos::kmip::tags

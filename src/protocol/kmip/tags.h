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

// The tags of the operations this server speaks (1.4 section 9.1.3.1; 2.0 section 9.1.3.1).
inline constexpr Tag kActivationDate = 0x420001;
inline constexpr Tag kAttribute = 0x420008;
inline constexpr Tag kAttributeIndex = 0x420009;
inline constexpr Tag kAttributeName = 0x42000A;
inline constexpr Tag kAttributeValue = 0x42000B;
inline constexpr Tag kBatchErrorContinuationOption = 0x42000E;
inline constexpr Tag kCommonTemplateAttribute = 0x42001F;
inline constexpr Tag kContactInformation = 0x420022;
inline constexpr Tag kBlockCipherMode = 0x420011;
inline constexpr Tag kCryptographicAlgorithm = 0x420028;
inline constexpr Tag kCryptographicLength = 0x42002A;
inline constexpr Tag kCryptographicParameters = 0x42002B;
inline constexpr Tag kCryptographicUsageMask = 0x42002C;
inline constexpr Tag kDeactivationDate = 0x42002F;
inline constexpr Tag kDestroyDate = 0x420033;
inline constexpr Tag kHashingAlgorithm = 0x420038;
inline constexpr Tag kInitialDate = 0x420039;
inline constexpr Tag kIvCounterNonce = 0x42003D;
inline constexpr Tag kKeyBlock = 0x420040;
inline constexpr Tag kKeyFormatType = 0x420042;
inline constexpr Tag kKey = 0x42003F;
inline constexpr Tag kKeyMaterial = 0x420043;
inline constexpr Tag kKeyValue = 0x420045;
inline constexpr Tag kKeyWrappingData = 0x420046;
inline constexpr Tag kLastChangeDate = 0x420048;
inline constexpr Tag kMaximumItems = 0x42004F;
inline constexpr Tag kMaximumResponseSize = 0x420050;
inline constexpr Tag kName = 0x420053;
inline constexpr Tag kNameType = 0x420054;
inline constexpr Tag kNameValue = 0x420055;
inline constexpr Tag kObjectGroup = 0x420056;
inline constexpr Tag kObjectType = 0x420057;
inline constexpr Tag kPaddingMethod = 0x42005F;
inline constexpr Tag kPrivateKey = 0x420064;
inline constexpr Tag kPrivateKeyTemplateAttribute = 0x420065;
inline constexpr Tag kPrivateKeyUniqueIdentifier = 0x420066;
inline constexpr Tag kPublicKey = 0x42006D;
inline constexpr Tag kPublicKeyTemplateAttribute = 0x42006E;
inline constexpr Tag kPublicKeyUniqueIdentifier = 0x42006F;
inline constexpr Tag kRecommendedCurve = 0x420075;
inline constexpr Tag kQueryFunction = 0x420074;
inline constexpr Tag kResultMessage = 0x42007D;
inline constexpr Tag kResultReason = 0x42007E;
inline constexpr Tag kRevocationMessage = 0x420080;
inline constexpr Tag kRevocationReason = 0x420081;
inline constexpr Tag kRevocationReasonCode = 0x420082;
inline constexpr Tag kServerInformation = 0x420088;
inline constexpr Tag kState = 0x42008D;
inline constexpr Tag kSymmetricKey = 0x42008F;
inline constexpr Tag kTemplateAttribute = 0x420091;
inline constexpr Tag kValidityIndicator = 0x42009B;
inline constexpr Tag kVendorIdentification = 0x42009D;
inline constexpr Tag kData = 0x4200C2;
inline constexpr Tag kSignatureData = 0x4200C3;
inline constexpr Tag kRandomIv = 0x4200C5;
inline constexpr Tag kMacData = 0x4200C6;
inline constexpr Tag kTagLength = 0x4200CE;
inline constexpr Tag kOffsetItems = 0x4200D4;
inline constexpr Tag kLocatedItems = 0x4200D5;
inline constexpr Tag kDigitalSignatureAlgorithm = 0x4200AE;
inline constexpr Tag kOriginalCreationDate = 0x4200BC;
inline constexpr Tag kAuthenticatedEncryptionAdditionalData = 0x4200FE;
inline constexpr Tag kAuthenticatedEncryptionTag = 0x4200FF;
inline constexpr Tag kAttributes = 0x420125;  // KMIP 2.0
inline constexpr Tag kCommonAttributes = 0x420126;  // KMIP 2.0
inline constexpr Tag kPrivateKeyAttributes = 0x420127;  // KMIP 2.0
inline constexpr Tag kPublicKeyAttributes = 0x420128;  // KMIP 2.0
inline constexpr Tag kAttributeReference = 0x42013B;  // KMIP 2.0
inline constexpr Tag kCurrentAttribute = 0x42013C;  // KMIP 2.0
inline constexpr Tag kNewAttribute = 0x42013D;  // KMIP 2.0

// The ranges of valid tags: the specification's and the extensions'.
inline constexpr Tag kFirstStandardTag = 0x420001;  // 0x420000 is unused
inline constexpr Tag kLastStandardTag = 0x42FFFF;
inline constexpr Tag kFirstExtensionTag = 0x540000;
inline constexpr Tag kLastExtensionTag = 0x54FFFF;

}  // namespace custos::kmip::tags

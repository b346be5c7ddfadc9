#include "crypto/aead_box.h"

#include "crypto/aead.h"
#include "crypto/random.h"

namespace custos::crypto {

StatusOr<Bytes> SealBox(const SecretBytes& key, ByteSpan plaintext, ByteSpan aad) {
  if (key.size() != 32) return InvalidArgument("box key must be 32 bytes");
  ASSIGN_OR_RETURN(AesGcm gcm, AesGcm::Create(key));
  Bytes box(kGcmNonceSize + plaintext.size() + kGcmTagSize);
  Bytes nonce = RandomBytes(kGcmNonceSize);
  std::copy(nonce.begin(), nonce.end(), box.begin());
  RETURN_IF_ERROR(gcm.Seal(nonce, plaintext, aad, std::span<uint8_t>(box).subspan(kGcmNonceSize)));
  return box;
}

StatusOr<SecretBytes> OpenBox(const SecretBytes& key, ByteSpan box, ByteSpan aad) {
  if (key.size() != 32) return InvalidArgument("box key must be 32 bytes");
  if (box.size() < kBoxOverhead) return IntegrityError("box shorter than nonce and tag");
  ASSIGN_OR_RETURN(AesGcm gcm, AesGcm::Create(key));
  return gcm.OpenSecret(box.first(kGcmNonceSize), box.subspan(kGcmNonceSize), aad);
}

}  // namespace custos::crypto

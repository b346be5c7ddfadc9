#include "protocol/envelope/kem_wrap.h"

#include "crypto/aead.h"
#include "crypto/hash.h"
#include "crypto/random.h"
#include "protocol/threshold/kem.h"

namespace custos::envelope {

Bytes KemContext(std::string_view label, ByteSpan prefix) {
  return Concat({AsBytes(label), crypto::Sha256Bytes(prefix)});
}

StatusOr<KemWrapped> WrapToY(const crypto::Point& y, const SecretBytes& dek, std::string_view label,
                             const std::function<Bytes(const crypto::Point& r)>& prefix_for) {
  crypto::Scalar r = crypto::Scalar::Random();
  KemWrapped out{crypto::Point::BaseMul(r), crypto::RandomBytes(crypto::kGcmNonceSize), {}};
  Bytes prefix = prefix_for(out.r);
  ASSIGN_OR_RETURN(SecretBytes kek, threshold::DeriveKek(y * r, out.r, y, KemContext(label, prefix)));
  ASSIGN_OR_RETURN(auto gcm, crypto::AesGcm::Create(kek));
  out.sealed = gcm.Seal(out.nonce, dek.Expose(), prefix);
  return out;
}

StatusOr<SecretBytes> UnwrapWithS(const crypto::Point& s, const crypto::Point& r, const crypto::Point& y,
                                  std::string_view label, ByteSpan prefix, ByteSpan nonce, ByteSpan sealed) {
  ASSIGN_OR_RETURN(SecretBytes kek, threshold::DeriveKek(s, r, y, KemContext(label, prefix)));
  ASSIGN_OR_RETURN(auto gcm, crypto::AesGcm::Create(kek));
  return gcm.OpenSecret(nonce, sealed, prefix);
}

}  // namespace custos::envelope

#include "crypto/ecdsa.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <cstdlib>

namespace custos::crypto {

namespace {

// BuildPkey makes an EVP_PKEY for P-256 from a public point and optional private scalar.
EVP_PKEY* BuildPkey(const Point& pub, const Scalar* priv) {
  Bytes pub_oct = pub.EncodeUncompressed();
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  if (bld == nullptr) return nullptr;
  EVP_PKEY* pkey = nullptr;
  OSSL_PARAM* params = nullptr;
  EVP_PKEY_CTX* ctx = nullptr;
  bool ok = OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) &&
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub_oct.data(),
                                             pub_oct.size()) &&
            (priv == nullptr || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv->bn()));
  if (ok) params = OSSL_PARAM_BLD_to_param(bld);
  if (params != nullptr) ctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
  if (ctx != nullptr && EVP_PKEY_fromdata_init(ctx) == 1) {
    EVP_PKEY_fromdata(ctx, &pkey, priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params);
  }
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  return pkey;
}

}  // namespace

struct VerifyingKey::Pkey {
  EVP_PKEY* pkey = nullptr;
  ~Pkey() { EVP_PKEY_free(pkey); }
};

struct SigningKey::Pkey {
  EVP_PKEY* pkey = nullptr;
  ~Pkey() { EVP_PKEY_free(pkey); }
};

VerifyingKey VerifyingKey::FromPoint(const Point& p) {
  VerifyingKey k;
  k.point_ = p;
  k.pkey_ = std::make_shared<Pkey>();
  k.pkey_->pkey = BuildPkey(p, nullptr);
  if (k.pkey_->pkey == nullptr) std::abort();
  return k;
}

StatusOr<VerifyingKey> VerifyingKey::Decode(ByteSpan sec1) {
  ASSIGN_OR_RETURN(Point p, Point::Decode(sec1));
  return FromPoint(p);
}

VerifyingKey::VerifyingKey(const VerifyingKey& other) = default;
VerifyingKey& VerifyingKey::operator=(const VerifyingKey& other) = default;
VerifyingKey::VerifyingKey(VerifyingKey&&) noexcept = default;
VerifyingKey& VerifyingKey::operator=(VerifyingKey&&) noexcept = default;
VerifyingKey::~VerifyingKey() = default;

Status VerifyingKey::Verify(ByteSpan message, ByteSpan signature) const {
  if (signature.size() != kSignatureSize) return IntegrityError("signature must be 64 bytes");
  ECDSA_SIG* sig = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(signature.data(), 32, nullptr);
  BIGNUM* s = BN_bin2bn(signature.data() + 32, 32, nullptr);
  if (sig == nullptr || r == nullptr || s == nullptr || ECDSA_SIG_set0(sig, r, s) != 1) {
    ECDSA_SIG_free(sig);
    BN_free(r);
    BN_free(s);
    return InternalError("cannot build ECDSA signature");
  }
  unsigned char* der = nullptr;
  int der_len = i2d_ECDSA_SIG(sig, &der);
  ECDSA_SIG_free(sig);
  if (der_len <= 0) return InternalError("cannot encode ECDSA signature");
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  int rc = 0;
  if (md != nullptr && EVP_DigestVerifyInit(md, nullptr, EVP_sha256(), nullptr, pkey_->pkey) == 1)
    rc = EVP_DigestVerify(md, der, static_cast<size_t>(der_len), message.data(), message.size());
  EVP_MD_CTX_free(md);
  OPENSSL_free(der);
  if (rc != 1) return IntegrityError("signature does not verify");
  return Status::Ok();
}

SigningKey SigningKey::Generate() {
  SecretBytes d = Scalar::Random().ToSecretBytes();
  auto k = FromScalarBytes(d);
  if (!k.ok()) std::abort();
  return std::move(k).value();
}

StatusOr<SigningKey> SigningKey::FromScalarBytes(const SecretBytes& d) {
  ASSIGN_OR_RETURN(Scalar s, Scalar::FromBytes(d.Expose()));
  if (s.IsZero()) return InvalidArgument("private key is zero");
  SigningKey k;
  k.d_ = s;
  Point pub = Point::BaseMul(s);
  k.verifying_ = std::make_unique<VerifyingKey>(VerifyingKey::FromPoint(pub));
  k.pkey_ = std::make_unique<Pkey>();
  k.pkey_->pkey = BuildPkey(pub, &k.d_);
  if (k.pkey_->pkey == nullptr) return InternalError("cannot build EC private key");
  return k;
}

SigningKey::SigningKey(SigningKey&&) noexcept = default;
SigningKey& SigningKey::operator=(SigningKey&&) noexcept = default;
SigningKey::~SigningKey() = default;

Bytes SigningKey::Sign(ByteSpan message) const {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  size_t der_len = 0;
  Bytes der;
  if (md == nullptr || EVP_DigestSignInit(md, nullptr, EVP_sha256(), nullptr, pkey_->pkey) != 1 ||
      EVP_DigestSign(md, nullptr, &der_len, message.data(), message.size()) != 1)
    std::abort();
  der.resize(der_len);
  if (EVP_DigestSign(md, der.data(), &der_len, message.data(), message.size()) != 1) std::abort();
  EVP_MD_CTX_free(md);
  const unsigned char* p = der.data();
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der_len));
  if (sig == nullptr) std::abort();
  Bytes out(kSignatureSize);
  if (BN_bn2binpad(ECDSA_SIG_get0_r(sig), out.data(), 32) != 32 ||
      BN_bn2binpad(ECDSA_SIG_get0_s(sig), out.data() + 32, 32) != 32)
    std::abort();
  ECDSA_SIG_free(sig);
  return out;
}

}  // namespace custos::crypto

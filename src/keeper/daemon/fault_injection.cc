#include "keeper/daemon/fault_injection.h"

#include <cstdlib>
#include <string>

#include "crypto/p256.h"

namespace custos::keeper {
namespace {

// InjectedFault is the one fault CUSTOS_FAULT_INJECTION names.
class InjectedFault final : public Misbehaviour {
 public:
  enum class Kind { kDkgBadShares, kBadPartial, kReshareBadShares };
  explicit InjectedFault(Kind kind) : kind_(kind) {}

  threshold::DkgBehavior DkgDealing() const override {
    return kind_ == Kind::kDkgBadShares ? threshold::DkgBehavior::kDealBadShares
                                        : threshold::DkgBehavior::kHonest;
  }
  bool DealBadReshareShares() const override { return kind_ == Kind::kReshareBadShares; }
  void TamperPartial(threshold::PartialDecryption& partial) const override {
    if (kind_ == Kind::kBadPartial) partial.d = partial.d + crypto::Point::Generator();
  }

 private:
  Kind kind_;
};

}  // namespace

StatusOr<std::shared_ptr<const Misbehaviour>> MisbehaviourFromEnv() {
  const char* env = std::getenv("CUSTOS_FAULT_INJECTION");
  if (env == nullptr || *env == '\0') return std::shared_ptr<const Misbehaviour>();
  std::string v(env);
  InjectedFault::Kind kind;
  if (v == "dkg-bad-shares")
    kind = InjectedFault::Kind::kDkgBadShares;
  else if (v == "bad-partial")
    kind = InjectedFault::Kind::kBadPartial;
  else if (v == "reshare-bad-shares")
    kind = InjectedFault::Kind::kReshareBadShares;
  else
    return InvalidArgument("unknown CUSTOS_FAULT_INJECTION value");
  return std::shared_ptr<const Misbehaviour>(std::make_shared<InjectedFault>(kind));
}

}  // namespace custos::keeper

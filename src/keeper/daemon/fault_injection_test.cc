// Tests of the fault-injection seam: CUSTOS_FAULT_INJECTION's values (the e2e tests start
// real keepers with them) and what each fault changes.
#include "keeper/daemon/fault_injection.h"

#include <cstdlib>

#include "crypto/p256.h"
#include "gtest/gtest.h"

namespace custos::keeper {
namespace {

// ScopedFault sets (or unsets) CUSTOS_FAULT_INJECTION for one test and leaves it unset after.
class ScopedFault {
 public:
  explicit ScopedFault(const char* value) {
    if (value == nullptr)
      ::unsetenv("CUSTOS_FAULT_INJECTION");
    else
      ::setenv("CUSTOS_FAULT_INJECTION", value, 1);
  }
  ~ScopedFault() { ::unsetenv("CUSTOS_FAULT_INJECTION"); }
};

threshold::PartialDecryption SamplePartial() {
  threshold::PartialDecryption p;
  p.d = crypto::Point::Generator();
  return p;
}

TEST(FaultInjectionTest, UnsetOrEmptyIsNoMisbehaviour) {
  for (const char* v : {static_cast<const char*>(nullptr), ""}) {
    ScopedFault env(v);
    auto m = MisbehaviourFromEnv();
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_EQ(*m, nullptr);
  }
}

TEST(FaultInjectionTest, UnknownValueIsRefused) {
  for (const char* v : {"bad_partial", "all", "bad-partial ", "BAD-PARTIAL"}) {
    ScopedFault env(v);
    auto m = MisbehaviourFromEnv();
    ASSERT_FALSE(m.ok()) << v;
    EXPECT_EQ(m.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(m.status().message(), "unknown CUSTOS_FAULT_INJECTION value");
  }
}

TEST(FaultInjectionTest, EachValueGivesExactlyItsFault) {
  const crypto::Point g = crypto::Point::Generator();
  {
    ScopedFault env("dkg-bad-shares");
    auto m = MisbehaviourFromEnv();
    ASSERT_TRUE(m.ok() && *m != nullptr);
    EXPECT_EQ((*m)->DkgDealing(), threshold::DkgBehavior::kDealBadShares);
    EXPECT_FALSE((*m)->DealBadReshareShares());
    auto p = SamplePartial();
    (*m)->TamperPartial(p);
    EXPECT_TRUE(p.d == g);
  }
  {
    ScopedFault env("bad-partial");
    auto m = MisbehaviourFromEnv();
    ASSERT_TRUE(m.ok() && *m != nullptr);
    EXPECT_EQ((*m)->DkgDealing(), threshold::DkgBehavior::kHonest);
    EXPECT_FALSE((*m)->DealBadReshareShares());
    auto p = SamplePartial();
    (*m)->TamperPartial(p);
    EXPECT_TRUE(p.d == g + g);  // D_i + G: its DLEQ proof no longer verifies
  }
  {
    ScopedFault env("reshare-bad-shares");
    auto m = MisbehaviourFromEnv();
    ASSERT_TRUE(m.ok() && *m != nullptr);
    EXPECT_EQ((*m)->DkgDealing(), threshold::DkgBehavior::kHonest);
    EXPECT_TRUE((*m)->DealBadReshareShares());
    auto p = SamplePartial();
    (*m)->TamperPartial(p);
    EXPECT_TRUE(p.d == g);
  }
}

}  // namespace
}  // namespace custos::keeper

// Fuzzes the KMS key policy parser and evaluator (src/appliance/kms/policy.h). Key policies are written
// by whoever may PutKeyPolicy on a key, parsed when stored and again whenever the store is
// read, and evaluated on every request to the key.
//
// The input is the policy document. Properties checked: no crash, no exception, no unbounded
// cost; every refusal is kInvalidArgument with a printable one-line "policy: " message; an
// accepted policy evaluates three fixed requests (a principal of the account with an
// encryption context, another user of the account without one, and a principal of another
// account) to a printable reason that agrees with the decision, and evaluates them the same
// way twice. The seeds in corpus/kms_policy_fuzz cover every element, operator and condition
// key, so mutations start from accepted documents.
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "appliance/kms/policy.h"

namespace {

using custos::kms::PolicyDecision;
using custos::kms::PolicyRequest;
using custos::kms::PolicyResult;

PolicyRequest FuzzRequest(std::string account, std::string user, std::string action,
                          std::map<std::string, std::string> context) {
  PolicyRequest r;
  r.principal_arn = "arn:aws:iam::" + account + ":user/" + user;
  r.account_id = std::move(account);
  r.action = std::move(action);
  r.resource_arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
  r.encryption_context = std::move(context);
  r.key_spec = "SYMMETRIC_DEFAULT";
  r.key_usage = "ENCRYPT_DECRYPT";
  return r;
}

bool Printable(const std::string& s) {
  for (char c : s) {
    if (c < 0x20 || c >= 0x7f) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view document(reinterpret_cast<const char*>(data), size);
  auto policy = custos::kms::KeyPolicy::Parse(document);
  if (!policy.ok()) {
    if (policy.status().code() != custos::ErrorCode::kInvalidArgument) std::abort();
    const std::string& message = policy.status().message();
    if (message.rfind("policy: ", 0) != 0 || !Printable(message)) std::abort();
    return 0;
  }
  static const PolicyRequest kRequests[] = {
      FuzzRequest("111122223333", "alice", "kms:Decrypt",
                  {{"Department", "finance"}, {"app:env", "prod"}}),
      FuzzRequest("111122223333", "ops/bob", "kms:GenerateDataKey", {}),
      FuzzRequest("444455556666", "mallory", "kms:Encrypt", {{"Department", "finance"}}),
  };
  for (const PolicyRequest& request : kRequests) {
    PolicyResult result = policy->Evaluate(request);
    if (!Printable(result.reason)) std::abort();
    const char* expected = nullptr;
    switch (result.decision) {
      case PolicyDecision::kAllow:
        expected = "allowed by key policy ";
        break;
      case PolicyDecision::kExplicitDeny:
        expected = "explicitly denied by key policy ";
        break;
      case PolicyDecision::kImplicitDeny:
        expected = "no statement of the key policy allows ";
        break;
    }
    if (expected == nullptr || result.reason.rfind(expected, 0) != 0) std::abort();
    PolicyResult again = policy->Evaluate(request);
    if (again.decision != result.decision || again.reason != result.reason) std::abort();
  }
  return 0;
}

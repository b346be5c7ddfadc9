// KMS key policies (docs/kms.md "Key policies"): the JSON policy language of AWS KMS, parsed
// once when a policy is stored and evaluated on every request to the key. custos has no IAM:
// a key policy is the whole of the authorisation for a key.
//
// Supported (anything else is refused at PutKeyPolicy/CreateKey with a message naming it, so a
// policy never silently means less than it says):
//   Version      "2012-10-17" (or absent)
//   Statement    an object or an array of objects with
//     Sid        optional string
//     Effect     "Allow" | "Deny"
//     Principal  "*" | {"AWS": ARN-or-account | [...]}     (exactly one of Principal/NotPrincipal
//     NotPrincipal same shape                               is required)
//     Action | NotAction     "kms:Op" | [...], with * and ? wildcards, case-insensitive
//     Resource | NotResource "*" | key ARN | [...], with wildcards (absent = "*")
//     Condition  {Operator: {ConditionKey: value | [values]}}
//       Operators: StringEquals, StringNotEquals, StringEqualsIgnoreCase,
//         StringNotEqualsIgnoreCase, StringLike, StringNotLike, Bool, Null, each optionally
//         suffixed IfExists and (for multi-valued keys) prefixed ForAllValues: / ForAnyValue:.
//       Keys (case-insensitive names): kms:EncryptionContext:<key> (the value of that
//         context key; the context key itself matches case-sensitively),
//         kms:EncryptionContextKeys (multi-valued), kms:CallerAccount, aws:PrincipalArn,
//         aws:username, kms:KeySpec, kms:KeyUsage.
//   Principals: "*" matches anyone; "ACCOUNT" or "arn:aws:iam::ACCOUNT:root" matches every
//   principal of that account (in AWS this delegates to IAM; custos has none, so it means every
//   access key of the account); any other ARN matches exactly.
//
// Evaluation (AWS's order): an explicit Deny whose principal, action, resource and conditions
// all match wins; else an Allow that matches grants; else the request is implicitly denied.
// A condition key absent from the request makes its operator false, except for the *IfExists
// forms and ForAllValues (true on an empty set) and Null, and (as in AWS) the negated
// operators StringNotEquals*, StringNotLike, which are true when the key is absent: a Deny
// "unless kms:EncryptionContext:k is X" must also deny a request without k.
// docs/kms-policies.md lists what is refused and why.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>
#include "common/status.h"

namespace custos::kms {

// PolicyRequest is one request as the policy sees it.
struct PolicyRequest {
  std::string principal_arn;  // arn:aws:iam::ACCOUNT:user/NAME
  std::string account_id;     // the principal's account
  std::string action;         // "kms:Encrypt"
  std::string resource_arn;   // the key's ARN
  std::map<std::string, std::string> encryption_context;  // empty when the operation has none
  std::string key_spec;
  std::string key_usage;
};

enum class PolicyDecision { kAllow, kExplicitDeny, kImplicitDeny };

// PolicyResult says what was decided and why: which statement allowed or denied (by Sid, else
// by index), or that none allowed. The reason is safe to return to the caller.
struct PolicyResult {
  PolicyDecision decision = PolicyDecision::kImplicitDeny;
  std::string reason;
};

// KeyPolicy is a parsed, validated policy document. Immutable and thread-safe after Parse.
class KeyPolicy {
 public:
  // Parse validates `document`. Failures are kInvalidArgument with a message that names the
  // offending element ("policy: Statement[1].Effect must be Allow or Deny"); the KMS front end
  // answers MalformedPolicyDocumentException with it. Documents above 32 KiB are refused.
  static StatusOr<KeyPolicy> Parse(std::string_view document);

  PolicyResult Evaluate(const PolicyRequest& request) const;

  KeyPolicy(KeyPolicy&&) noexcept;
  KeyPolicy& operator=(KeyPolicy&&) noexcept;
  ~KeyPolicy();

 private:
  KeyPolicy();
  struct Statement;
  std::vector<Statement> statements_;
};

// DefaultKeyPolicy is the policy CreateKey gives a key when none is supplied: AWS's default
// ("Enable IAM User Permissions": arn:aws:iam::ACCOUNT:root may do kms:* on the key), which in
// custos lets every access key of the account use the key.
std::string DefaultKeyPolicy(std::string_view account_id);

}  // namespace custos::kms

// Key policies: the default policy, AWS's evaluation order (explicit Deny, Allow, implicit
// deny), Not* elements, wildcards, every condition operator against every condition key,
// every refusal of Parse with its message, and hostile documents.
#include "appliance/kms/policy.h"

#include <chrono>
#include <cstdint>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/testing.h"

namespace custos::kms {
namespace {

using Json = nlohmann::json;

constexpr char kAccount[] = "111122223333";
constexpr char kOtherAccount[] = "444455556666";
constexpr char kKeyArn[] =
    "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

PolicyRequest Request(std::string action = "kms:Encrypt", std::string user = "alice",
                      std::string account = kAccount,
                      std::map<std::string, std::string> context = {}) {
  PolicyRequest r;
  r.principal_arn = "arn:aws:iam::" + account + ":user/" + user;
  r.account_id = account;
  r.action = std::move(action);
  r.resource_arn = kKeyArn;
  r.encryption_context = std::move(context);
  r.key_spec = "SYMMETRIC_DEFAULT";
  r.key_usage = "ENCRYPT_DECRYPT";
  return r;
}

PolicyRequest WithContext(std::map<std::string, std::string> context) {
  return Request("kms:Encrypt", "alice", kAccount, std::move(context));
}

// Decide parses `document` and evaluates it: "allow", "explicit deny", "implicit deny", or
// "refused: <message>".
std::string Decide(const std::string& document, const PolicyRequest& request) {
  auto policy = KeyPolicy::Parse(document);
  if (!policy.ok()) return "refused: " + policy.status().message();
  switch (policy->Evaluate(request).decision) {
    case PolicyDecision::kAllow:
      return "allow";
    case PolicyDecision::kExplicitDeny:
      return "explicit deny";
    case PolicyDecision::kImplicitDeny:
      return "implicit deny";
  }
  return "?";
}

std::string Reason(const std::string& document, const PolicyRequest& request) {
  auto policy = KeyPolicy::Parse(document);
  if (!policy.ok()) return "refused: " + policy.status().message();
  return policy->Evaluate(request).reason;
}

// Refusal is the message of a refused document ("" when it parsed).
std::string Refusal(const std::string& document) {
  auto policy = KeyPolicy::Parse(document);
  if (policy.ok()) return "";
  EXPECT_EQ(policy.status().code(), ErrorCode::kInvalidArgument) << document;
  return policy.status().message();
}

// Allow is a one-statement Allow policy for anyone, on kms:*, with `condition` (JSON) if given.
std::string Allow(const std::string& condition) {
  return R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",)"
         R"("Action":"kms:*","Resource":"*","Condition":)" +
         condition + "}]}";
}

// Statement builds {"Effect":..,"Principal":..,"Action":..} with optional extra members.
std::string Policy(const std::vector<std::string>& statements) {
  std::string out = R"({"Version":"2012-10-17","Statement":[)";
  for (size_t i = 0; i < statements.size(); ++i) {
    if (i) out += ",";
    out += statements[i];
  }
  return out + "]}";
}

// ---------------------------------------------------------------------------------------------
// The default policy.

TEST(KeyPolicy, DefaultPolicyIsAwsShaped) {
  Json doc = Json::parse(DefaultKeyPolicy(kAccount));
  EXPECT_EQ(doc["Version"], "2012-10-17");
  EXPECT_EQ(doc["Id"], "key-default-1");
  ASSERT_EQ(doc["Statement"].size(), 1u);
  const Json& s = doc["Statement"][0];
  EXPECT_EQ(s["Sid"], "Enable IAM User Permissions");
  EXPECT_EQ(s["Effect"], "Allow");
  EXPECT_EQ(s["Principal"]["AWS"], "arn:aws:iam::111122223333:root");
  EXPECT_EQ(s["Action"], "kms:*");
  EXPECT_EQ(s["Resource"], "*");
}

TEST(KeyPolicy, DefaultPolicyAllowsTheAccountOnly) {
  const std::string doc = DefaultKeyPolicy(kAccount);
  for (const char* action : {"kms:Encrypt", "kms:Decrypt", "kms:PutKeyPolicy",
                             "kms:ScheduleKeyDeletion", "kms:GenerateDataKey"}) {
    for (const char* user : {"alice", "bob", "ops/deploy"}) {
      EXPECT_EQ(Decide(doc, Request(action, user)), "allow") << action << " " << user;
    }
    EXPECT_EQ(Decide(doc, Request(action, "alice", kOtherAccount)), "implicit deny") << action;
  }
  EXPECT_EQ(Reason(doc, Request()),
            "allowed by key policy statement \"Enable IAM User Permissions\"");
  EXPECT_EQ(Reason(doc, Request("kms:Decrypt", "alice", kOtherAccount)),
            "no statement of the key policy allows kms:Decrypt");
  // A request without an account (should never happen) matches no account principal.
  PolicyRequest nobody = Request();
  nobody.account_id.clear();
  EXPECT_EQ(Decide(doc, nobody), "implicit deny");
}

TEST(KeyPolicy, DefaultPolicyForAnotherAccountDeniesThisOne) {
  EXPECT_EQ(Decide(DefaultKeyPolicy(kOtherAccount), Request()), "implicit deny");
  EXPECT_EQ(Decide(DefaultKeyPolicy(kOtherAccount), Request("kms:Encrypt", "x", kOtherAccount)),
            "allow");
}

// ---------------------------------------------------------------------------------------------
// Evaluation order and the Not* elements.

TEST(KeyPolicy, ExplicitDenyBeatsAllowInEitherOrder) {
  const std::string allow =
      R"({"Sid":"All","Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"kms:*"})";
  const std::string deny =
      R"({"Sid":"NoDecryptForAlice","Effect":"Deny",)"
      R"("Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:Decrypt"})";
  for (const std::string& doc : {Policy({allow, deny}), Policy({deny, allow})}) {
    EXPECT_EQ(Decide(doc, Request("kms:Decrypt")), "explicit deny");
    EXPECT_EQ(Reason(doc, Request("kms:Decrypt")),
              "explicitly denied by key policy statement \"NoDecryptForAlice\"");
    EXPECT_EQ(Decide(doc, Request("kms:Encrypt")), "allow");
    EXPECT_EQ(Reason(doc, Request("kms:Encrypt")), "allowed by key policy statement \"All\"");
    EXPECT_EQ(Decide(doc, Request("kms:Decrypt", "bob")), "allow");
  }
}

TEST(KeyPolicy, ReasonsNameStatementsWithoutSidByIndex) {
  const std::string doc = Policy({
      R"({"Effect":"Allow","Principal":"*","Action":"kms:Encrypt"})",
      R"({"Effect":"Allow","Principal":"*","Action":"kms:Decrypt"})",
      R"({"Sid":"","Effect":"Deny","Principal":"*","Action":"kms:Sign"})",
  });
  EXPECT_EQ(Reason(doc, Request("kms:Encrypt")), "allowed by key policy Statement[0]");
  EXPECT_EQ(Reason(doc, Request("kms:Decrypt")), "allowed by key policy Statement[1]");
  EXPECT_EQ(Reason(doc, Request("kms:Sign")), "explicitly denied by key policy Statement[2]");
  EXPECT_EQ(Reason(doc, Request("kms:Verify")), "no statement of the key policy allows kms:Verify");
}

TEST(KeyPolicy, DenyWithUnmetConditionDoesNotDeny) {
  const std::string doc = Policy({
      R"({"Effect":"Allow","Principal":"*","Action":"kms:*"})",
      R"({"Effect":"Deny","Principal":"*","Action":"kms:*",)"
      R"("Condition":{"StringEquals":{"kms:EncryptionContext:tier":"secret"}}})",
  });
  EXPECT_EQ(Decide(doc, WithContext({{"tier", "public"}})), "allow");
  EXPECT_EQ(Decide(doc, WithContext({{"tier", "secret"}})), "explicit deny");
  EXPECT_EQ(Decide(doc, WithContext({})), "allow");
}

TEST(KeyPolicy, NotAction) {
  const std::string doc = Policy(
      {R"({"Effect":"Allow","Principal":"*","NotAction":["kms:ScheduleKeyDeletion","kms:Put*"]})"});
  EXPECT_EQ(Decide(doc, Request("kms:Encrypt")), "allow");
  EXPECT_EQ(Decide(doc, Request("kms:ScheduleKeyDeletion")), "implicit deny");
  EXPECT_EQ(Decide(doc, Request("kms:PutKeyPolicy")), "implicit deny");
  const std::string deny = Policy({
      R"({"Effect":"Allow","Principal":"*","Action":"kms:*"})",
      R"({"Effect":"Deny","Principal":"*","NotAction":"kms:Decrypt"})",
  });
  EXPECT_EQ(Decide(deny, Request("kms:Decrypt")), "allow");
  EXPECT_EQ(Decide(deny, Request("kms:Encrypt")), "explicit deny");
}

TEST(KeyPolicy, NotPrincipal) {
  const std::string doc = Policy({
      R"({"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"kms:*"})",
      R"({"Sid":"OnlyAlice","Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::111122223333:user/alice"},)"
      R"("Action":"kms:Decrypt"})",
  });
  EXPECT_EQ(Decide(doc, Request("kms:Decrypt", "alice")), "allow");
  EXPECT_EQ(Decide(doc, Request("kms:Decrypt", "bob")), "explicit deny");
  EXPECT_EQ(Decide(doc, Request("kms:Encrypt", "bob")), "allow");
  // NotPrincipal in an Allow: everyone except the other account's root, i.e. this account.
  const std::string allow = Policy(
      {R"({"Effect":"Allow","NotPrincipal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*"})"});
  EXPECT_EQ(Decide(allow, Request()), "allow");
  EXPECT_EQ(Decide(allow, Request("kms:Encrypt", "mallory", kOtherAccount)), "implicit deny");
}

TEST(KeyPolicy, ResourceAndNotResource) {
  auto with = [](const std::string& member) {
    return Policy({R"({"Effect":"Allow","Principal":"*","Action":"kms:*",)" + member + "}"});
  };
  EXPECT_EQ(Decide(with(R"("Resource":")" + std::string(kKeyArn) + "\""), Request()), "allow");
  EXPECT_EQ(Decide(with(R"("Resource":"arn:aws:kms:*:111122223333:key/*")"), Request()), "allow");
  EXPECT_EQ(Decide(with(R"("Resource":["arn:aws:kms:eu-west-1:111122223333:key/other",)"
                        R"("arn:aws:kms:eu-west-1:111122223333:key/1234abcd-*"])"),
                   Request()),
            "allow");
  EXPECT_EQ(Decide(with(R"("Resource":"arn:aws:kms:eu-west-1:111122223333:key/other")"), Request()),
            "implicit deny");
  // Resources match case-sensitively.
  EXPECT_EQ(Decide(with(R"("Resource":"arn:aws:kms:*:111122223333:KEY/*")"), Request()),
            "implicit deny");
  EXPECT_EQ(Decide(with(R"("Resource":"arn:aws:kms:*:111122223333:key/1234ABCD-*")"), Request()),
            "implicit deny");
  EXPECT_EQ(Decide(with(R"("NotResource":"arn:aws:kms:*:*:key/other")"), Request()), "allow");
  EXPECT_EQ(Decide(with(R"("NotResource":"arn:aws:kms:*:*:key/*")"), Request()), "implicit deny");
  EXPECT_EQ(Decide(with(R"("NotResource":"*")"), Request()), "implicit deny");
}

// ---------------------------------------------------------------------------------------------
// Wildcards in actions and principals.

TEST(KeyPolicy, ActionWildcardsAreCaseInsensitive) {
  auto actions = [](const std::string& action) {
    return Policy({R"({"Effect":"Allow","Principal":"*","Action":)" + action + "}"});
  };
  const std::string gen = actions(R"("kms:Gen*")");
  EXPECT_EQ(Decide(gen, Request("kms:GenerateDataKey")), "allow");
  EXPECT_EQ(Decide(gen, Request("kms:GenerateDataKeyWithoutPlaintext")), "allow");
  EXPECT_EQ(Decide(gen, Request("kms:GenerateRandom")), "allow");
  EXPECT_EQ(Decide(gen, Request("kms:Encrypt")), "implicit deny");
  EXPECT_EQ(Decide(gen, Request("kms:ReGenerate")), "implicit deny");
  for (const char* all : {R"("kms:*")", R"("*")", R"("KMS:*")", R"(["kms:*"])"}) {
    EXPECT_EQ(Decide(actions(all), Request("kms:Decrypt")), "allow") << all;
    EXPECT_EQ(Decide(actions(all), Request("kms:ScheduleKeyDeletion")), "allow") << all;
  }
  EXPECT_EQ(Decide(actions(R"("KMS:ENCRYPT")"), Request("kms:Encrypt")), "allow");
  EXPECT_EQ(Decide(actions(R"("kms:encrypt")"), Request("kms:Encrypt")), "allow");
  EXPECT_EQ(Decide(actions(R"("kms:Encrypt")"), Request("KMS:ENCRYPT")), "allow");
  EXPECT_EQ(Decide(actions(R"("kms:?ncrypt")"), Request("kms:Encrypt")), "allow");
  EXPECT_EQ(Decide(actions(R"("kms:?ncrypt")"), Request("kms:ReEncrypt")), "implicit deny");
  EXPECT_EQ(Decide(actions(R"("kms:*Encrypt*")"), Request("kms:ReEncryptFrom")), "allow");
  EXPECT_EQ(Decide(actions(R"("kms:Encrypt")"), Request("kms:EncryptX")), "implicit deny");
  EXPECT_EQ(Decide(actions(R"("kms:Encrypt")"), Request("kms:Encryp")), "implicit deny");
  EXPECT_EQ(Decide(actions(R"(["kms:Sign","kms:Verify"])"), Request("kms:Verify")), "allow");
  EXPECT_EQ(Decide(actions(R"(["kms:Sign","kms:Verify"])"), Request("kms:Encrypt")),
            "implicit deny");
}

TEST(KeyPolicy, Principals) {
  auto principal = [](const std::string& p) {
    return Policy({R"({"Effect":"Allow","Principal":)" + p + R"(,"Action":"kms:*"})"});
  };
  const PolicyRequest alice = Request();
  const PolicyRequest bob = Request("kms:Encrypt", "bob");
  const PolicyRequest mallory = Request("kms:Encrypt", "mallory", kOtherAccount);
  for (const char* anyone : {R"("*")", R"({"AWS":"*"})", R"({"AWS":["*"]})"}) {
    EXPECT_EQ(Decide(principal(anyone), alice), "allow") << anyone;
    EXPECT_EQ(Decide(principal(anyone), mallory), "allow") << anyone;
  }
  for (const char* account :
       {R"({"AWS":"111122223333"})", R"({"AWS":"arn:aws:iam::111122223333:root"})"}) {
    EXPECT_EQ(Decide(principal(account), alice), "allow") << account;
    EXPECT_EQ(Decide(principal(account), bob), "allow") << account;
    EXPECT_EQ(Decide(principal(account), mallory), "implicit deny") << account;
  }
  const std::string just_alice = principal(R"({"AWS":"arn:aws:iam::111122223333:user/alice"})");
  EXPECT_EQ(Decide(just_alice, alice), "allow");
  EXPECT_EQ(Decide(just_alice, bob), "implicit deny");
  EXPECT_EQ(Decide(just_alice, Request("kms:Encrypt", "alice", kOtherAccount)), "implicit deny");
  // ARNs match exactly, case-sensitively.
  EXPECT_EQ(Decide(principal(R"({"AWS":"arn:aws:iam::111122223333:user/Alice"})"), alice),
            "implicit deny");
  const std::string list =
      principal(R"({"AWS":["arn:aws:iam::111122223333:user/bob","444455556666"]})");
  EXPECT_EQ(Decide(list, alice), "implicit deny");
  EXPECT_EQ(Decide(list, bob), "allow");
  EXPECT_EQ(Decide(list, mallory), "allow");
  // A principal pattern is written with aws:PrincipalArn, since Principal takes no wildcards.
  const std::string pattern =
      Policy({R"({"Effect":"Allow","Principal":"*","Action":"kms:*","Condition":{"StringLike":)"
              R"({"aws:PrincipalArn":"arn:aws:iam::111122223333:user/a*"}}})"});
  EXPECT_EQ(Decide(pattern, alice), "allow");
  EXPECT_EQ(Decide(pattern, bob), "implicit deny");
}

// ---------------------------------------------------------------------------------------------
// Condition operators, each positive and negative.

struct OperatorCase {
  std::string condition;                       // the Condition member
  std::map<std::string, std::string> context;  // the request's encryption context
  bool allowed;
};

TEST(KeyPolicy, EachOperator) {
  const std::vector<OperatorCase> cases = {
      {R"({"StringEquals":{"kms:EncryptionContext:dept":"finance"}})", {{"dept", "finance"}}, true},
      {R"({"StringEquals":{"kms:EncryptionContext:dept":"finance"}})",
       {{"dept", "Finance"}},
       false},
      {R"({"StringEquals":{"kms:EncryptionContext:dept":"fin*"}})", {{"dept", "finance"}}, false},
      {R"({"StringNotEquals":{"kms:EncryptionContext:dept":"finance"}})", {{"dept", "hr"}}, true},
      {R"({"StringNotEquals":{"kms:EncryptionContext:dept":"finance"}})",
       {{"dept", "finance"}},
       false},
      {R"({"StringNotEquals":{"kms:EncryptionContext:dept":["finance","hr"]}})",
       {{"dept", "hr"}},
       false},
      {R"({"StringNotEquals":{"kms:EncryptionContext:dept":["finance","hr"]}})",
       {{"dept", "it"}},
       true},
      {R"({"StringEqualsIgnoreCase":{"kms:EncryptionContext:dept":"FINANCE"}})",
       {{"dept", "Finance"}},
       true},
      {R"({"StringEqualsIgnoreCase":{"kms:EncryptionContext:dept":"FINANCE"}})",
       {{"dept", "Finances"}},
       false},
      {R"({"StringNotEqualsIgnoreCase":{"kms:EncryptionContext:dept":"FINANCE"}})",
       {{"dept", "finance"}},
       false},
      {R"({"StringNotEqualsIgnoreCase":{"kms:EncryptionContext:dept":"FINANCE"}})",
       {{"dept", "hr"}},
       true},
      {R"({"StringLike":{"kms:EncryptionContext:dept":"fin*"}})", {{"dept", "finance"}}, true},
      {R"({"StringLike":{"kms:EncryptionContext:dept":"fin?nce"}})", {{"dept", "finance"}}, true},
      {R"({"StringLike":{"kms:EncryptionContext:dept":"Fin*"}})", {{"dept", "finance"}}, false},
      {R"({"StringLike":{"kms:EncryptionContext:dept":"*x*"}})", {{"dept", "finance"}}, false},
      {R"({"StringNotLike":{"kms:EncryptionContext:dept":"fin*"}})", {{"dept", "hr"}}, true},
      {R"({"StringNotLike":{"kms:EncryptionContext:dept":"fin*"}})", {{"dept", "finance"}}, false},
      {R"({"Bool":{"kms:EncryptionContext:signed":"true"}})", {{"signed", "true"}}, true},
      {R"({"Bool":{"kms:EncryptionContext:signed":true}})", {{"signed", "TRUE"}}, true},
      {R"({"Bool":{"kms:EncryptionContext:signed":"true"}})", {{"signed", "false"}}, false},
      {R"({"Bool":{"kms:EncryptionContext:signed":"true"}})", {{"signed", "yes"}}, false},
      {R"({"Bool":{"kms:EncryptionContext:signed":false}})", {{"signed", "false"}}, true},
      {R"({"Bool":{"kms:EncryptionContext:signed":"false"}})", {}, false},
      {R"({"Null":{"kms:EncryptionContext:x":"true"}})", {}, true},
      {R"({"Null":{"kms:EncryptionContext:x":"true"}})", {{"x", ""}}, false},
      {R"({"Null":{"kms:EncryptionContext:x":"false"}})", {{"x", "1"}}, true},
      {R"({"Null":{"kms:EncryptionContext:x":false}})", {{"y", "1"}}, false},
      {R"({"Null":{"kms:EncryptionContext:x":["true","false"]}})", {}, true},
      {R"({"Null":{"kms:EncryptionContextKeys":"true"}})", {}, true},
      {R"({"Null":{"kms:EncryptionContextKeys":"true"}})", {{"a", "b"}}, false},
      {R"({"Null":{"kms:EncryptionContextKeys":"false"}})", {{"a", "b"}}, true},
  };
  for (const OperatorCase& c : cases) {
    EXPECT_EQ(Decide(Allow(c.condition), WithContext(c.context)),
              c.allowed ? "allow" : "implicit deny")
        << c.condition << " with " << Json(c.context).dump();
  }
}

TEST(KeyPolicy, EncryptionContextKey) {
  const std::string doc = Allow(R"({"StringEquals":{"kms:EncryptionContext:Project":"apollo"}})");
  EXPECT_EQ(Decide(doc, WithContext({{"Project", "apollo"}})), "allow");
  EXPECT_EQ(Decide(doc, WithContext({{"Project", "apollo"}, {"other", "x"}})), "allow");
  EXPECT_EQ(Decide(doc, WithContext({})), "implicit deny");                       // absent
  EXPECT_EQ(Decide(doc, WithContext({{"other", "apollo"}})), "implicit deny");    // absent
  EXPECT_EQ(Decide(doc, WithContext({{"Project", "gemini"}})), "implicit deny");  // different
  EXPECT_EQ(Decide(doc, WithContext({{"Project", "Apollo"}})), "implicit deny");  // value case
  EXPECT_EQ(Decide(doc, WithContext({{"project", "apollo"}})), "implicit deny");  // key case
  EXPECT_EQ(Decide(doc, WithContext({{"PROJECT", "apollo"}})), "implicit deny");
  // The condition key's name is case-insensitive up to the context key, which keeps its case.
  const std::string lower = Allow(R"({"StringEquals":{"KMS:encryptioncontext:Project":"apollo"}})");
  EXPECT_EQ(Decide(lower, WithContext({{"Project", "apollo"}})), "allow");
  EXPECT_EQ(Decide(lower, WithContext({{"project", "apollo"}})), "implicit deny");
  // Context keys with odd characters are matched as they are.
  const std::string odd = Allow(R"({"StringEquals":{"kms:EncryptionContext:a:b/c d":"v"}})");
  EXPECT_EQ(Decide(odd, WithContext({{"a:b/c d", "v"}})), "allow");
  // An empty value is a value.
  const std::string empty = Allow(R"({"StringEquals":{"kms:EncryptionContext:e":""}})");
  EXPECT_EQ(Decide(empty, WithContext({{"e", ""}})), "allow");
  EXPECT_EQ(Decide(empty, WithContext({})), "implicit deny");
}

TEST(KeyPolicy, ValuesOrKeysAndOperatorsAnd) {
  const std::string values =
      Allow(R"({"StringEquals":{"kms:EncryptionContext:dept":["finance","hr"]}})");
  EXPECT_EQ(Decide(values, WithContext({{"dept", "hr"}})), "allow");
  EXPECT_EQ(Decide(values, WithContext({{"dept", "finance"}})), "allow");
  EXPECT_EQ(Decide(values, WithContext({{"dept", "it"}})), "implicit deny");

  const std::string keys = Allow(
      R"({"StringEquals":{"kms:EncryptionContext:dept":"hr","kms:EncryptionContext:env":"prod"}})");
  EXPECT_EQ(Decide(keys, WithContext({{"dept", "hr"}, {"env", "prod"}})), "allow");
  EXPECT_EQ(Decide(keys, WithContext({{"dept", "hr"}, {"env", "dev"}})), "implicit deny");
  EXPECT_EQ(Decide(keys, WithContext({{"dept", "hr"}})), "implicit deny");

  const std::string ops = Allow(R"({"StringEquals":{"kms:EncryptionContext:dept":"hr"},)"
                                R"("StringLike":{"aws:PrincipalArn":"*:user/a*"}})");
  EXPECT_EQ(Decide(ops, WithContext({{"dept", "hr"}})), "allow");
  PolicyRequest bob = Request("kms:Encrypt", "bob", kAccount, {{"dept", "hr"}});
  EXPECT_EQ(Decide(ops, bob), "implicit deny");
  EXPECT_EQ(Decide(ops, WithContext({{"dept", "it"}})), "implicit deny");
}

TEST(KeyPolicy, IfExists) {
  const std::string doc =
      Allow(R"({"StringEqualsIfExists":{"kms:EncryptionContext:dept":"finance"}})");
  EXPECT_EQ(Decide(doc, WithContext({})), "allow");
  EXPECT_EQ(Decide(doc, WithContext({{"other", "x"}})), "allow");
  EXPECT_EQ(Decide(doc, WithContext({{"dept", "finance"}})), "allow");
  EXPECT_EQ(Decide(doc, WithContext({{"dept", "hr"}})), "implicit deny");
  const std::string like =
      Allow(R"({"StringNotLikeIfExists":{"kms:EncryptionContext:dept":"h*"}})");
  EXPECT_EQ(Decide(like, WithContext({})), "allow");
  EXPECT_EQ(Decide(like, WithContext({{"dept", "hr"}})), "implicit deny");
  EXPECT_EQ(Decide(like, WithContext({{"dept", "it"}})), "allow");
  const std::string flag = Allow(R"({"BoolIfExists":{"kms:EncryptionContext:f":"true"}})");
  EXPECT_EQ(Decide(flag, WithContext({})), "allow");
  EXPECT_EQ(Decide(flag, WithContext({{"f", "false"}})), "implicit deny");
}

TEST(KeyPolicy, AbsentKeyMatchesOnlyNegatedOperators) {
  // As in AWS: an absent key fails StringEquals/Like/Bool but satisfies StringNot*, so a Deny
  // "unless the context says finance" also denies a request with no context.
  const std::string doc = Policy({
      R"({"Effect":"Allow","Principal":"*","Action":"kms:*"})",
      R"({"Sid":"FinanceOnly","Effect":"Deny","Principal":"*","Action":"kms:Decrypt",)"
      R"("Condition":{"StringNotEquals":{"kms:EncryptionContext:dept":"finance"}}})",
  });
  EXPECT_EQ(Decide(doc, Request("kms:Decrypt", "alice", kAccount, {{"dept", "finance"}})), "allow");
  EXPECT_EQ(Decide(doc, Request("kms:Decrypt", "alice", kAccount, {{"dept", "hr"}})),
            "explicit deny");
  EXPECT_EQ(Decide(doc, Request("kms:Decrypt", "alice", kAccount, {})), "explicit deny");
  for (const char* op : {"StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike"}) {
    EXPECT_EQ(Decide(Allow(std::string(R"({")") + op + R"(":{"kms:EncryptionContext:k":"v"}})"),
                     WithContext({})),
              "allow")
        << op;
  }
  for (const char* op : {"StringEquals", "StringEqualsIgnoreCase", "StringLike", "Bool"}) {
    EXPECT_EQ(Decide(Allow(std::string(R"({")") + op + R"(":{"kms:EncryptionContext:k":"true"}})"),
                     WithContext({})),
              "implicit deny")
        << op;
  }
}

TEST(KeyPolicy, SetOperatorsOnEncryptionContextKeys) {
  const std::string all =
      Allow(R"({"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["a","b","c"]}})");
  EXPECT_EQ(Decide(all, WithContext({{"a", "1"}, {"b", "2"}})), "allow");
  EXPECT_EQ(Decide(all, WithContext({{"a", "1"}, {"d", "2"}})), "implicit deny");
  EXPECT_EQ(Decide(all, WithContext({{"A", "1"}})), "implicit deny");
  EXPECT_EQ(Decide(all, WithContext({})), "allow");  // ForAllValues over nothing

  const std::string any =
      Allow(R"({"ForAnyValue:StringEquals":{"kms:EncryptionContextKeys":"a"}})");
  EXPECT_EQ(Decide(any, WithContext({{"a", "1"}, {"d", "2"}})), "allow");
  EXPECT_EQ(Decide(any, WithContext({{"d", "2"}})), "implicit deny");
  EXPECT_EQ(Decide(any, WithContext({})), "implicit deny");  // ForAnyValue over nothing

  const std::string any_if =
      Allow(R"({"ForAnyValue:StringEqualsIfExists":{"kms:EncryptionContextKeys":"a"}})");
  EXPECT_EQ(Decide(any_if, WithContext({})), "allow");
  EXPECT_EQ(Decide(any_if, WithContext({{"d", "2"}})), "implicit deny");

  const std::string like =
      Allow(R"({"ForAllValues:StringLike":{"kms:EncryptionContextKeys":"app:*"}})");
  EXPECT_EQ(Decide(like, WithContext({{"app:id", "1"}, {"app:env", "2"}})), "allow");
  EXPECT_EQ(Decide(like, WithContext({{"app:id", "1"}, {"user", "2"}})), "implicit deny");

  // Negated set operators negate per value.
  const std::string none =
      Allow(R"({"ForAllValues:StringNotEquals":{"kms:EncryptionContextKeys":["secret","pii"]}})");
  EXPECT_EQ(Decide(none, WithContext({{"a", "1"}})), "allow");
  EXPECT_EQ(Decide(none, WithContext({{"a", "1"}, {"pii", "2"}})), "implicit deny");
  const std::string some_other =
      Allow(R"({"ForAnyValue:StringNotLike":{"kms:EncryptionContextKeys":"app:*"}})");
  EXPECT_EQ(Decide(some_other, WithContext({{"app:id", "1"}, {"user", "2"}})), "allow");
  EXPECT_EQ(Decide(some_other, WithContext({{"app:id", "1"}})), "implicit deny");

  // Exactly the keys {a, b}: every key is a or b, and both are present.
  const std::string exact =
      Allow(R"({"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["a","b"]},)"
            R"("StringLike":{"kms:EncryptionContext:a":"*","kms:EncryptionContext:b":"*"}})");
  EXPECT_EQ(Decide(exact, WithContext({{"a", "1"}, {"b", "2"}})), "allow");
  EXPECT_EQ(Decide(exact, WithContext({{"a", "1"}})), "implicit deny");
  EXPECT_EQ(Decide(exact, WithContext({{"a", "1"}, {"b", "2"}, {"c", "3"}})), "implicit deny");
}

TEST(KeyPolicy, OtherConditionKeys) {
  const PolicyRequest alice = Request();
  const PolicyRequest mallory = Request("kms:Encrypt", "mallory", kOtherAccount);
  const std::string account = Allow(R"({"StringEquals":{"kms:CallerAccount":"111122223333"}})");
  EXPECT_EQ(Decide(account, alice), "allow");
  EXPECT_EQ(Decide(account, mallory), "implicit deny");
  const std::string arn =
      Allow(R"({"StringEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:user/alice"}})");
  EXPECT_EQ(Decide(arn, alice), "allow");
  EXPECT_EQ(Decide(arn, Request("kms:Encrypt", "bob")), "implicit deny");
  const std::string user = Allow(R"({"StringEquals":{"AWS:UserName":"alice"}})");
  EXPECT_EQ(Decide(user, alice), "allow");
  EXPECT_EQ(Decide(user, Request("kms:Encrypt", "team/alice")), "allow");  // NAME after a path
  EXPECT_EQ(Decide(user, Request("kms:Encrypt", "bob")), "implicit deny");
  EXPECT_EQ(Decide(user, Request("kms:Encrypt", "alice", kOtherAccount)), "allow");
  PolicyRequest role = alice;
  role.principal_arn = "arn:aws:iam::111122223333:role/alice";
  EXPECT_EQ(Decide(user, role), "implicit deny");  // aws:username exists only for users
  EXPECT_EQ(Decide(Allow(R"({"Null":{"aws:username":"true"}})"), role), "allow");

  const std::string spec = Allow(R"({"StringEquals":{"kms:KeySpec":"SYMMETRIC_DEFAULT"}})");
  EXPECT_EQ(Decide(spec, alice), "allow");
  PolicyRequest rsa = alice;
  rsa.key_spec = "RSA_2048";
  EXPECT_EQ(Decide(spec, rsa), "implicit deny");
  const std::string usage = Allow(R"({"StringLike":{"kms:KeyUsage":"ENCRYPT_*"}})");
  EXPECT_EQ(Decide(usage, alice), "allow");
  PolicyRequest sign = alice;
  sign.key_usage = "SIGN_VERIFY";
  EXPECT_EQ(Decide(usage, sign), "implicit deny");
  sign.key_usage.clear();  // absent
  EXPECT_EQ(Decide(usage, sign), "implicit deny");
  EXPECT_EQ(Decide(Allow(R"({"Null":{"kms:KeyUsage":"true"}})"), sign), "allow");
}

TEST(KeyPolicy, WildcardMatching) {
  struct Case {
    const char* pattern;
    const char* value;
    bool match;
  };
  const Case cases[] = {
      {"*", "", true},
      {"*", "anything", true},
      {"", "", true},
      {"", "a", false},
      {"?", "", false},
      {"?", "a", true},
      {"?", "ab", false},
      {"a*", "a", true},
      {"a*", "ba", false},
      {"*a", "ba", true},
      {"*a", "ab", false},
      {"a*b*c", "abc", true},
      {"a*b*c", "aXbYc", true},
      {"a*b*c", "aXbYcZ", false},
      {"**", "x", true},
      {"*?", "", false},
      {"*?", "x", true},
      {"a?c", "abc", true},
      {"a?c", "ac", false},
      {"*ab", "aab", true},
      {"*aab", "aaab", true},
      {"?", "\xc3\xa9", true},
      {"??", "\xc3\xa9", false},
      {"*??", "\xc3\xa9", false},
      {"\xc3\xa9*", "\xc3\xa9t\xc3\xa9", true},
      {"*\xc3\xa9", "\xc3\xa9t\xc3\xa9", true},
      {"?t?", "\xc3\xa9t\xc3\xa9", true},
      {"a\\*", "a\\b", true},
  };
  for (const Case& c : cases) {
    Json condition = {{"StringLike", {{"kms:EncryptionContext:k", c.pattern}}}};
    EXPECT_EQ(Decide(Allow(condition.dump()), WithContext({{"k", c.value}})),
              c.match ? "allow" : "implicit deny")
        << c.pattern << " vs " << c.value;
  }
}

// ---------------------------------------------------------------------------------------------
// What Parse accepts and refuses.

TEST(KeyPolicyParse, AcceptsTheSubset) {
  const char* accepted[] = {
      // A single statement object, no Version, no Resource.
      R"({"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:Encrypt"}})",
      R"({"Version":"2012-10-17","Id":"x","Statement":[{"Sid":"s1","Effect":"Deny",)"
      R"("NotPrincipal":{"AWS":["111122223333"]},"NotAction":"*","NotResource":["arn:x"]}]})",
      R"({"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Condition":{}}]})",
      R"({"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Condition":)"
      R"({"ForAllValues:StringLikeIfExists":{"kms:EncryptionContextKeys":["a*"]},)"
      R"("StringNotEqualsIgnoreCaseIfExists":{"kms:EncryptionContext:x":"y"}}}]})",
      R"({"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/r"},)"
      R"("Action":"kms:*"}]})",
  };
  for (const char* doc : accepted) EXPECT_EQ(Refusal(doc), "") << doc;
}

TEST(KeyPolicyParse, RefusalsNameTheElement) {
  auto stmt = [](const std::string& members) {
    return R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",)"
           R"("Action":"kms:*"},{)" +
           members + "}]}";
  };
  auto cond = [&](const std::string& condition) {
    return stmt(R"("Effect":"Allow","Principal":"*","Action":"kms:*","Condition":)" + condition);
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "policy: not valid JSON"},
      {"{", "policy: not valid JSON"},
      {R"({"Statement":[]} x)", "policy: not valid JSON"},
      {"{\"Statement\":\"\xff\"}", "policy: not valid JSON"},
      {R"({"Statement":[],})", "policy: not valid JSON"},
      {"[]", "policy: the document must be a JSON object"},
      {"\"x\"", "policy: the document must be a JSON object"},
      {"{}", "policy: Statement is required"},
      {R"({"Version":"2012-10-17"})", "policy: Statement is required"},
      {R"({"Statement":[]})", "policy: Statement must not be empty"},
      {R"({"Statement":"x"})", "policy: Statement must be an object or an array of objects"},
      {R"({"Statement":null})", "policy: Statement must be an object or an array of objects"},
      {R"({"Statement":["x"]})", "policy: Statement[0] must be an object"},
      {R"({"Version":"2008-10-17","Statement":[]})", "policy: Version must be \"2012-10-17\""},
      {R"({"Version":20121017,"Statement":[]})", "policy: Version must be \"2012-10-17\""},
      {R"({"Id":7,"Statement":[]})", "policy: Id must be a string"},
      {R"({"Statement":[],"Extra":1})", "policy: unknown top-level field \"Extra\""},
      {R"({"statement":[]})", "policy: unknown top-level field \"statement\""},
      {R"({"Statement":[],"Statement":[]})", "policy: duplicate field \"Statement\""},
      {stmt(R"("Effect":"Allow","Effect":"Deny","Principal":"*","Action":"kms:*")"),
       "policy: duplicate field \"Effect\""},
      {stmt(R"("Effect":"Allow","Principal":"*","Action":"kms:*","Foo":1)"),
       "policy: Statement[1]: unknown field \"Foo\""},
      {stmt(R"("Sid":5,"Effect":"Allow","Principal":"*","Action":"kms:*")"),
       "policy: Statement[1].Sid must be a string"},
      {stmt("\"Sid\":\"a\\nb\",\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"kms:*\""),
       "policy: Statement[1].Sid must be at most 128 printable ASCII characters"},
      {stmt(R"("Sid":")" + std::string(129, 'a') +
            R"(","Effect":"Allow","Principal":"*","Action":"kms:*")"),
       "policy: Statement[1].Sid must be at most 128 printable ASCII characters"},
      {Policy({R"({"Sid":"a","Effect":"Allow","Principal":"*","Action":"kms:*"})",
               R"({"Sid":"a","Effect":"Deny","Principal":"*","Action":"kms:*"})"}),
       "policy: Statement[1].Sid \"a\" is also the Sid of Statement[0]"},
      {stmt(R"("Principal":"*","Action":"kms:*")"), "policy: Statement[1].Effect is required"},
      {stmt(R"("Effect":"allow","Principal":"*","Action":"kms:*")"),
       "policy: Statement[1].Effect must be Allow or Deny"},
      {stmt(R"("Effect":true,"Principal":"*","Action":"kms:*")"),
       "policy: Statement[1].Effect must be Allow or Deny"},
      {stmt(R"("Effect":"Allow","Action":"kms:*")"),
       "policy: Statement[1] needs exactly one of Principal and NotPrincipal"},
      {stmt(R"("Effect":"Allow","Principal":"*","NotPrincipal":"*","Action":"kms:*")"),
       "policy: Statement[1] needs exactly one of Principal and NotPrincipal"},
      {stmt(R"("Effect":"Allow","Principal":"111122223333","Action":"kms:*")"),
       "policy: Statement[1].Principal must be \"*\" or {\"AWS\": ...}"},
      {stmt(R"("Effect":"Allow","Principal":["*"],"Action":"kms:*")"),
       "policy: Statement[1].Principal must be \"*\" or {\"AWS\": ...}"},
      {stmt(R"("Effect":"Allow","Principal":{},"Action":"kms:*")"),
       "policy: Statement[1].Principal must be \"*\" or {\"AWS\": ...}"},
      {stmt(R"("Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"kms:*")"),
       "policy: Statement[1].Principal: unsupported principal type \"Service\" (only \"AWS\")"},
      {stmt(R"("Effect":"Allow","Principal":{"AWS":[]},"Action":"kms:*")"),
       "policy: Statement[1].Principal.AWS must be a string or a non-empty array of strings"},
      {stmt(R"("Effect":"Allow","NotPrincipal":{"AWS":[1]},"Action":"kms:*")"),
       "policy: Statement[1].NotPrincipal.AWS must be a string or a non-empty array of strings"},
      {stmt(R"("Effect":"Allow","Principal":{"AWS":"alice"},"Action":"kms:*")"),
       "policy: Statement[1].Principal.AWS: \"alice\" is not \"*\", a 12-digit account ID or an "
       "arn:aws:iam:: ARN"},
      {stmt(
           R"("Effect":"Allow","Principal":{"AWS":["*","arn:aws:iam::111122223333:"]},"Action":"kms:*")"),
       "policy: Statement[1].Principal.AWS[1]: \"arn:aws:iam::111122223333:\" is not \"*\", a "
       "12-digit account ID or an arn:aws:iam:: ARN"},
      {stmt(
           R"("Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/*"},"Action":"kms:*")"),
       "policy: Statement[1].Principal.AWS: \"arn:aws:iam::111122223333:user/*\": wildcards are "
       "allowed only as the whole principal \"*\" (use aws:PrincipalArn with StringLike to match "
       "a pattern)"},
      {stmt(R"("Effect":"Allow","Principal":"*")"),
       "policy: Statement[1] needs exactly one of Action and NotAction"},
      {stmt(R"("Effect":"Allow","Principal":"*","Action":"kms:*","NotAction":"kms:Sign")"),
       "policy: Statement[1] needs exactly one of Action and NotAction"},
      {stmt(R"("Effect":"Allow","Principal":"*","Action":[])"),
       "policy: Statement[1].Action must be a string or a non-empty array of strings"},
      {stmt(R"("Effect":"Allow","Principal":"*","Action":{"kms":"*"})"),
       "policy: Statement[1].Action must be a string or a non-empty array of strings"},
      {stmt(R"("Effect":"Allow","Principal":"*","Action":"s3:GetObject")"),
       "policy: Statement[1].Action: \"s3:GetObject\" is not a kms: action"},
      {stmt(R"("Effect":"Allow","Principal":"*","NotAction":["kms:Sign","iam:*"])"),
       "policy: Statement[1].NotAction[1]: \"iam:*\" is not a kms: action"},
      {stmt(R"("Effect":"Allow","Principal":"*","Action":"kms*")"),
       "policy: Statement[1].Action: \"kms*\" is not a kms: action"},
      {stmt(
           R"("Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","NotResource":"*")"),
       "policy: Statement[1] has both Resource and NotResource"},
      {stmt(R"("Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"key/1")"),
       "policy: Statement[1].Resource: \"key/1\" is not \"*\" or an ARN"},
      {stmt(R"("Effect":"Allow","Principal":"*","Action":"kms:*","NotResource":["*",3])"),
       "policy: Statement[1].NotResource must be a string or a non-empty array of strings"},
      {stmt(
           R"("Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"arn:aws:kms:*:${aws:username}")"),
       "policy: Statement[1].Resource: policy variables (${...}) are not supported"},
      {cond("[]"), "policy: Statement[1].Condition must be an object"},
      {cond(R"({"NumericLessThan":{"kms:EncryptionContext:n":"3"}})"),
       "policy: Statement[1].Condition: unsupported operator NumericLessThan"},
      {cond(R"({"stringequals":{"kms:EncryptionContext:n":"3"}})"),
       "policy: Statement[1].Condition: unsupported operator stringequals"},
      {cond(R"({"NullIfExists":{"kms:EncryptionContext:n":"true"}})"),
       "policy: Statement[1].Condition: unsupported operator NullIfExists"},
      {cond(R"({"ForAnyValue:Null":{"kms:EncryptionContextKeys":"true"}})"),
       "policy: Statement[1].Condition: unsupported operator ForAnyValue:Null"},
      {cond(R"({"ForSomeValues:StringEquals":{"kms:EncryptionContextKeys":"a"}})"),
       "policy: Statement[1].Condition: unsupported operator ForSomeValues:StringEquals"},
      {cond(R"({"IfExists":{"kms:EncryptionContextKeys":"a"}})"),
       "policy: Statement[1].Condition: unsupported operator IfExists"},
      {cond(R"({"StringEquals":{}})"),
       "policy: Statement[1].Condition.StringEquals must be a non-empty object of condition keys"},
      {cond(R"({"StringEquals":"x"})"),
       "policy: Statement[1].Condition.StringEquals must be a non-empty object of condition keys"},
      {cond(R"({"StringEquals":{"kms:ViaService":"s3.eu-west-1.amazonaws.com"}})"),
       "policy: Statement[1].Condition.StringEquals: unsupported condition key kms:ViaService"},
      {cond(R"({"StringEquals":{"kms:EncryptionContext:":"x"}})"),
       "policy: Statement[1].Condition.StringEquals: unsupported condition key "
       "kms:EncryptionContext:"},
      {cond(R"({"StringLike":{"aws:SourceIp":"10.*"}})"),
       "policy: Statement[1].Condition.StringLike: unsupported condition key aws:SourceIp"},
      {cond(R"({"ForAnyValue:StringEquals":{"kms:CallerAccount":"111122223333"}})"),
       "policy: Statement[1].Condition.ForAnyValue:StringEquals: kms:CallerAccount is "
       "single-valued; ForAllValues: and ForAnyValue: apply only to kms:EncryptionContextKeys"},
      {cond(R"({"StringEquals":{"kms:EncryptionContextKeys":"a"}})"),
       "policy: Statement[1].Condition.StringEquals: kms:EncryptionContextKeys is multi-valued; "
       "use ForAllValues: or ForAnyValue:"},
      {cond(R"({"StringEquals":{"kms:EncryptionContext:a":[]}})"),
       "policy: Statement[1].Condition.StringEquals.kms:EncryptionContext:a must be a string or "
       "a non-empty array of strings"},
      {cond(R"({"StringEquals":{"kms:EncryptionContext:a":3}})"),
       "policy: Statement[1].Condition.StringEquals.kms:EncryptionContext:a must be a string or "
       "a non-empty array of strings"},
      {cond(R"({"StringEquals":{"kms:EncryptionContext:a":["x",null]}})"),
       "policy: Statement[1].Condition.StringEquals.kms:EncryptionContext:a must be a string or "
       "a non-empty array of strings"},
      {cond(R"({"StringEquals":{"kms:EncryptionContext:a":{"b":"c"}}})"),
       "policy: Statement[1].Condition.StringEquals.kms:EncryptionContext:a must be a string or "
       "a non-empty array of strings"},
      {cond(R"({"Bool":{"kms:EncryptionContext:a":"yes"}})"),
       "policy: Statement[1].Condition.Bool.kms:EncryptionContext:a: values must be \"true\" or "
       "\"false\""},
      {cond(R"({"Null":{"kms:EncryptionContext:a":["true","1"]}})"),
       "policy: Statement[1].Condition.Null.kms:EncryptionContext:a: values must be \"true\" or "
       "\"false\""},
      {cond(R"({"StringLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/${aws:username}"}})"),
       "policy: Statement[1].Condition.StringLike.aws:PrincipalArn: policy variables (${...}) "
       "are not supported"},
      // Names from the document are echoed printable and cut short.
      {cond("{\"Str\\u0000ing\\n\\u00e9\":{}}"),
       "policy: Statement[1].Condition: unsupported operator Str\\x00ing\\x0a\\xc3\\xa9"},
      {cond(R"({")" + std::string(100, 'X') + R"(":{}})"),
       "policy: Statement[1].Condition: unsupported operator " + std::string(64, 'X') + "..."},
      {stmt(R"("Effect":"Allow","Principal":"*","Action":"kms:*","\\":1)"),
       "policy: Statement[1]: unknown field \"\\x5c\""},
  };
  for (const auto& [doc, message] : cases) {
    EXPECT_EQ(Refusal(doc), message) << doc;
  }
}

TEST(KeyPolicyParse, FuzzSeedsAreWhatTheySay) {
  auto read = [](const std::string& name) {
    std::ifstream in(testing::ProjectPath("fuzz/corpus/kms_policy_fuzz/" + name), std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
  };
  for (const char* name : {"default_policy", "allow_deny_not_elements", "conditions_every_operator",
                           "set_operators_ifexists"}) {
    const std::string doc = read(name);
    ASSERT_FALSE(doc.empty()) << name;
    EXPECT_EQ(Refusal(doc), "") << name;
  }
  EXPECT_EQ(
      Refusal(read("refused_unsupported")),
      "policy: Statement[0].Principal: unsupported principal type \"Service\" (only \"AWS\")");
  // The seed with every operator allows what it was written for.
  PolicyRequest r = Request("kms:Decrypt", "alice", kAccount,
                            {{"Department", "hr"}, {"app:env", "prod"}, {"signed", "true"}});
  EXPECT_EQ(Decide(read("conditions_every_operator"), r), "allow");
  r.encryption_context["legacy"] = "1";
  EXPECT_EQ(Decide(read("conditions_every_operator"), r), "implicit deny");
}

TEST(KeyPolicyParse, SizeLimit) {
  // Pad a valid policy with whitespace to exactly 32 KiB, then one byte more.
  std::string doc = DefaultKeyPolicy(kAccount);
  doc.append(32 * 1024 - doc.size(), ' ');
  EXPECT_EQ(Refusal(doc), "");
  doc.push_back(' ');
  EXPECT_EQ(Refusal(doc), "policy: document is larger than 32 KiB");
  EXPECT_EQ(Refusal(std::string(1 << 20, '[')), "policy: document is larger than 32 KiB");
}

TEST(KeyPolicyParse, MovedPolicyStillEvaluates) {
  auto parsed = KeyPolicy::Parse(DefaultKeyPolicy(kAccount));
  ASSERT_TRUE(parsed.ok());
  KeyPolicy moved = std::move(*parsed);
  EXPECT_EQ(moved.Evaluate(Request()).decision, PolicyDecision::kAllow);
  auto other = KeyPolicy::Parse(DefaultKeyPolicy(kOtherAccount));
  ASSERT_TRUE(other.ok());
  moved = std::move(*other);
  EXPECT_EQ(moved.Evaluate(Request()).decision, PolicyDecision::kImplicitDeny);
}

// ---------------------------------------------------------------------------------------------
// Hostile documents: refused or parsed, never a crash, an exception or an unbounded cost.

// CheckHostile parses `doc`; a refusal must be kInvalidArgument with a printable one-line
// "policy: " message, an accepted policy must evaluate.
void CheckHostile(const std::string& doc) {
  auto policy = KeyPolicy::Parse(doc);
  if (!policy.ok()) {
    ASSERT_EQ(policy.status().code(), ErrorCode::kInvalidArgument);
    const std::string& message = policy.status().message();
    ASSERT_EQ(message.rfind("policy: ", 0), 0u) << message;
    for (char c : message) ASSERT_TRUE(c >= 0x20 && c < 0x7f) << message;
    return;
  }
  for (const PolicyRequest& r :
       {Request(), Request("kms:Decrypt", "bob", kOtherAccount, {{"a", "b"}})}) {
    PolicyResult result = policy->Evaluate(r);
    for (char c : result.reason) ASSERT_TRUE(c >= 0x20 && c < 0x7f) << result.reason;
  }
}

TEST(KeyPolicyHostile, DeepNesting) {
  for (int depth : {8, 11, 12, 13, 100, 5000, 16000}) {
    std::string arrays =
        R"({"Statement":)" + std::string(depth, '[') + std::string(depth, ']') + "}";
    std::string objects = "{\"Statement\":";
    for (int i = 0; i < depth; ++i) objects += "{\"a\":";
    objects += "1" + std::string(depth + 1, '}');
    std::string conditions = Allow(std::string(depth, '[') + std::string(depth, ']'));
    std::string unclosed = std::string(depth, '{');
    for (const std::string& doc : {arrays, objects, conditions, unclosed}) {
      SCOPED_TRACE(depth);
      CheckHostile(doc);
      EXPECT_FALSE(KeyPolicy::Parse(doc).ok());
    }
  }
  EXPECT_EQ(Refusal(std::string(10000, '[') + std::string(10000, ']')),
            "policy: nested too deeply");
}

TEST(KeyPolicyHostile, HugeArraysAndStrings) {
  // Thousands of actions, principals, resources and condition values: accepted, and cheap.
  auto many = [](const std::string& item, size_t n) {
    std::string out = "[";
    for (size_t i = 0; i < n; ++i) out += (i ? "," : "") + item;
    return out + "]";
  };
  const std::vector<std::string> docs = {
      Policy(
          {R"({"Effect":"Allow","Principal":"*","Action":)" + many(R"("kms:Gen*")", 2500) + "}"}),
      Policy({R"({"Effect":"Allow","Principal":{"AWS":)" + many(R"("111122223333")", 2000) +
              R"(},"Action":"kms:*"})"}),
      Policy({R"({"Effect":"Allow","Principal":"*","Action":"*","Resource":)" +
              many(R"("arn:*:*:*:*:*")", 2000) + "}"}),
      Allow(R"({"StringLike":{"kms:EncryptionContext:a":)" + many(R"("*x*y*z")", 3000) + "}}"),
      Allow(R"({"StringLike":{"kms:EncryptionContext:a":")" + std::string(30000, '*') + "\"}}"),
      Allow(R"({"StringLike":{"kms:EncryptionContext:a":")" + std::string(30000, '?') + "\"}}"),
      Policy({R"({"Sid":")" + std::string(30000, 's') +
              R"(","Effect":"Allow","Principal":"*","Action":"*"})"}),
  };
  for (const std::string& doc : docs) {
    ASSERT_LE(doc.size(), 32u * 1024) << doc.size();
    CheckHostile(doc);
  }
  // Many statements: the most a 32 KiB document holds.
  std::vector<std::string> statements;
  for (int i = 0; i < 550; ++i) {
    statements.push_back(R"({"Effect":"Deny","Principal":"*","Action":"kms:X)" + std::to_string(i) +
                         "\"}");
  }
  ASSERT_LE(Policy(statements).size(), 32u * 1024);
  CheckHostile(Policy(statements));
  EXPECT_EQ(Refusal(Policy(statements)), "");
  // A pathological wildcard against a long context value stays fast.
  std::string pattern;
  for (int i = 0; i < 4000; ++i) pattern += "*a";
  pattern += "*b";
  auto policy =
      KeyPolicy::Parse(Allow(R"({"StringLike":{"kms:EncryptionContext:a":")" + pattern + "\"}}"));
  ASSERT_TRUE(policy.ok());
  auto start = std::chrono::steady_clock::now();
  PolicyResult r = policy->Evaluate(WithContext({{"a", std::string(8192, 'a')}}));
  EXPECT_EQ(r.decision, PolicyDecision::kImplicitDeny);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(KeyPolicyHostile, MutatedDocuments) {
  const std::vector<std::string> seeds = {
      DefaultKeyPolicy(kAccount),
      Policy(
          {R"({"Sid":"d","Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:iam::111122223333:user/alice"]},)"
           R"("NotAction":["kms:Encrypt","kms:Gen*"],"NotResource":"arn:aws:kms:*",)"
           R"("Condition":{"ForAllValues:StringLikeIfExists":{"kms:EncryptionContextKeys":["a*","b"]},)"
           R"("Null":{"kms:EncryptionContext:x":"true"},"Bool":{"kms:EncryptionContext:f":true}}})",
           R"({"Effect":"Allow","Principal":"*","Action":"*","Condition":{"StringNotEqualsIgnoreCase":)"
           R"({"aws:username":["Bob","carol"],"kms:KeySpec":"RSA_*"}}})"}),
  };
  std::string alphabet =
      "{}[]\",:*?\\ \xff"
      "aAStringEqualsNullkms:AWS";
  alphabet.push_back('\0');
  std::mt19937 rng(20261122);
  int accepted = 0, refused = 0;
  for (int round = 0; round < 4000; ++round) {
    std::string doc = seeds[round % seeds.size()];
    int edits = 1 + static_cast<int>(rng() % 8);
    for (int e = 0; e < edits && !doc.empty(); ++e) {
      size_t at = rng() % doc.size();
      switch (rng() % 5) {
        case 0:
          doc[at] = alphabet[rng() % alphabet.size()];
          break;
        case 1:
          doc.erase(at, 1 + rng() % 8);
          break;
        case 2:
          doc.insert(at, 1, alphabet[rng() % alphabet.size()]);
          break;
        case 3:
          doc.insert(at, doc.substr(rng() % doc.size(), 1 + rng() % 40));
          break;
        case 4:
          doc.resize(at);
          break;
      }
    }
    ASSERT_NO_FATAL_FAILURE(CheckHostile(doc)) << doc;
    (KeyPolicy::Parse(doc).ok() ? accepted : refused)++;
  }
  EXPECT_GT(refused, 0);
  EXPECT_GT(accepted, 0);
}

TEST(KeyPolicyHostile, RandomBytes) {
  std::mt19937 rng(7);
  for (int round = 0; round < 2000; ++round) {
    std::string doc(rng() % 300, '\0');
    for (char& c : doc) c = static_cast<char>(rng());
    ASSERT_NO_FATAL_FAILURE(CheckHostile(doc));
  }
}

}  // namespace
}  // namespace custos::kms

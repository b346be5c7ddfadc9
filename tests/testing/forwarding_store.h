// ForwardingStore passes every call to a real store; a test derives from it and overrides the
// calls it wants to fail (a database that goes away, a commit whose outcome is lost).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "appliance/store/store.h"

namespace custos::testing {

class ForwardingStore : public store::Store {
 public:
  explicit ForwardingStore(std::unique_ptr<store::Store> inner) : inner_(std::move(inner)) {}
  store::Store& inner() { return *inner_; }

  Status CreateKey(const store::KeyRecord& k, const store::KeyVersion& v) override {
    return inner_->CreateKey(k, v);
  }
  StatusOr<store::KeyRecord> GetKey(std::string_view id) override { return inner_->GetKey(id); }
  StatusOr<std::vector<store::KeyRecord>> ListKeys() override { return inner_->ListKeys(); }
  Status UpdateKey(const store::KeyRecord& k) override { return inner_->UpdateKey(k); }
  Status AddKeyVersion(const store::KeyRecord& k, const store::KeyVersion& v) override {
    return inner_->AddKeyVersion(k, v);
  }
  StatusOr<store::KeyVersion> GetKeyVersion(std::string_view id, uint32_t v) override {
    return inner_->GetKeyVersion(id, v);
  }
  StatusOr<std::vector<store::KeyVersion>> ListKeyVersions(std::string_view id) override {
    return inner_->ListKeyVersions(id);
  }
  Status DeleteKey(std::string_view id) override { return inner_->DeleteKey(id); }
  Status CreateAlias(const store::AliasRecord& a) override { return inner_->CreateAlias(a); }
  Status UpdateAlias(std::string_view n, std::string_view id, int64_t t) override {
    return inner_->UpdateAlias(n, id, t);
  }
  Status DeleteAlias(std::string_view n) override { return inner_->DeleteAlias(n); }
  StatusOr<store::AliasRecord> GetAlias(std::string_view n) override { return inner_->GetAlias(n); }
  StatusOr<std::vector<store::AliasRecord>> ListAliases(
      std::optional<std::string_view> id) override {
    return inner_->ListAliases(id);
  }
  Status TagResource(std::string_view id, const std::vector<store::Tag>& t) override {
    return inner_->TagResource(id, t);
  }
  Status UntagResource(std::string_view id, const std::vector<std::string>& t) override {
    return inner_->UntagResource(id, t);
  }
  StatusOr<std::vector<store::Tag>> ListTags(std::string_view id) override {
    return inner_->ListTags(id);
  }
  Status PutAccessKey(const store::AccessKeyRecord& k) override { return inner_->PutAccessKey(k); }
  StatusOr<store::AccessKeyRecord> GetAccessKey(std::string_view id) override {
    return inner_->GetAccessKey(id);
  }
  StatusOr<std::vector<store::AccessKeyRecord>> ListAccessKeys() override {
    return inner_->ListAccessKeys();
  }
  Status DeleteAccessKey(std::string_view id) override { return inner_->DeleteAccessKey(id); }
  Status AppendAudit(const std::vector<store::AuditRecord>& r, store::Durability d) override {
    return inner_->AppendAudit(r, d);
  }
  Status SignAudit(uint64_t seq, ByteSpan sig, store::Durability d) override {
    return inner_->SignAudit(seq, sig, d);
  }
  Status SyncAudit() override { return inner_->SyncAudit(); }
  StatusOr<store::AuditRecord> LastAudit() override { return inner_->LastAudit(); }
  StatusOr<store::AuditRecord> LastSignedAudit() override { return inner_->LastSignedAudit(); }
  StatusOr<std::vector<store::AuditRecord>> ReadAudit(uint64_t from, size_t limit) override {
    return inner_->ReadAudit(from, limit);
  }
  StatusOr<uint64_t> StateVersion() override { return inner_->StateVersion(); }
  StatusOr<std::vector<store::StateChange>> StateChangesSince(uint64_t v, size_t limit) override {
    return inner_->StateChangesSince(v, limit);
  }
  StatusOr<std::vector<std::string>> ListAuditLogs() override { return inner_->ListAuditLogs(); }
  StatusOr<std::vector<store::AuditRecord>> ReadAuditLog(std::string_view log, uint64_t from,
                                                         size_t limit) override {
    return inner_->ReadAuditLog(log, from, limit);
  }
  Status PutMeta(std::string_view n, std::string_view v) override { return inner_->PutMeta(n, v); }
  StatusOr<std::string> GetMeta(std::string_view n) override { return inner_->GetMeta(n); }

 private:
  std::unique_ptr<store::Store> inner_;
};

}  // namespace custos::testing

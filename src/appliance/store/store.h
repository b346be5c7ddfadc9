// The appliance's persistent state (DESIGN.md "Storage"; docs/architecture.md "Store"): KMS
// keys and their versions, aliases, tags, SigV4 access keys and the audit chain. Only wrapped
// key material and metadata are stored: the host never has anything else to give it.
//
// Every mutating call is one transaction and is durable when it returns OK (the SQLite backend
// runs WAL with synchronous=FULL, the PostgreSQL backend commits with synchronous_commit on),
// so an acknowledged request survives kill -9 and power loss. Implementations are thread-safe.
// Errors: kNotFound for a missing object, kAlreadyExists for a duplicate name, kUnavailable for
// an I/O, connection or database failure (the message names the operation, never a value).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include "common/bytes.h"
#include "common/status.h"

namespace custos::store {

// KeyRecord is one KMS key's metadata (AWS KeyMetadata, as far as custos keeps it). Times are
// Unix seconds.
struct KeyRecord {
  std::string key_id;       // UUID
  std::string arn;          // arn:aws:kms:REGION:ACCOUNT:key/UUID
  std::string description;
  std::string key_spec;     // SYMMETRIC_DEFAULT | HMAC_256 | ECC_NIST_P256
  std::string key_usage;    // ENCRYPT_DECRYPT | GENERATE_VERIFY_MAC | SIGN_VERIFY
  std::string key_state;    // Enabled | Disabled | PendingDeletion
  int64_t creation_date = 0;
  std::optional<int64_t> deletion_date;  // set while PendingDeletion
  int32_t pending_window_days = 0;       // set while PendingDeletion
  bool rotation_enabled = false;
  int32_t rotation_period_days = 365;
  std::optional<int64_t> next_rotation_date;
  std::string policy;             // key policy JSON document
  uint32_t current_version = 1;   // the version new ciphertexts use
  // revision counts the record's changes: 1 when created, +1 by every UpdateKey and
  // AddKeyVersion. Those two apply only to the revision they were read at, so a node that
  // changes a key from a stale copy (another node changed it meanwhile) is refused instead of
  // undoing the other change (docs/storage.md "Several nodes").
  uint64_t revision = 1;
};

// KeyVersion is one version of a key's material, wrapped inside the trusted core
// (ecall/kms_calls.h).
struct KeyVersion {
  std::string key_id;
  uint32_t version = 0;
  Bytes wrapped_material;
  Bytes public_key;           // SubjectPublicKeyInfo DER for asymmetric keys, else empty
  int64_t created = 0;
  std::string rotation_type;  // "" for the first version, "AUTOMATIC" or "ON_DEMAND"
};

// StateChange is one entry of the change log every node of a cluster follows to keep its cache
// coherent: which key (its record, versions or tags) or which alias a committed mutation
// touched. `version` numbers the changes in commit order, from 1, with no gap.
struct StateChange {
  uint64_t version = 0;
  std::string key_id;      // set when a key changed or was deleted
  std::string alias_name;  // set when an alias changed or was deleted
};

struct AliasRecord {
  std::string alias_name;  // "alias/..."
  std::string key_id;
  int64_t creation_date = 0;
  int64_t last_updated_date = 0;
};

struct Tag {
  std::string key;
  std::string value;
};

// AccessKeyRecord is one SigV4 credential. The secret is stored only wrapped under the root
// key (ecall kKmsNewAccessSecret).
struct AccessKeyRecord {
  std::string access_key_id;  // "CKIA" + 16 upper-case base32 characters
  std::string name;           // operator-chosen, unique
  std::string principal_arn;  // arn:aws:iam::ACCOUNT:user/NAME
  Bytes wrapped_secret;
  int64_t created = 0;
};

// AuditRecord is one stored audit entry: the entry JSON, its chain hash h_seq
// (audit/chain.h), and the core's signature over the head when this entry ended a batch
// (empty otherwise).
struct AuditRecord {
  uint64_t seq = 0;
  std::string entry;
  Bytes hash;
  Bytes signature;
};

// Durability says when a write may be acknowledged: kDurable once on stable storage (fsync),
// kWritten once handed to the kernel (write(2)).
enum class Durability { kDurable, kWritten };

class Store {
 public:
  virtual ~Store() = default;

  // Keys. CreateKey stores the record and its first version in one transaction;
  // kAlreadyExists for a taken key_id. The version's key_id must be the record's and the
  // record's current_version the version's number (kInvalidArgument otherwise): a stored key's
  // current_version always names a stored version, which UpdateKey and AddKeyVersion keep so.
  virtual Status CreateKey(const KeyRecord& key, const KeyVersion& first_version) = 0;
  virtual StatusOr<KeyRecord> GetKey(std::string_view key_id) = 0;
  // ListKeys returns every key, ordered by key_id.
  virtual StatusOr<std::vector<KeyRecord>> ListKeys() = 0;
  // UpdateKey replaces the metadata of an existing key (kNotFound if absent; kInvalidArgument
  // if its current_version names no stored version; kAborted, nothing stored, if the stored
  // revision is not key.revision: the key changed since it was read). The stored revision
  // becomes key.revision + 1. CreateKey stores revision 1 whatever the record says.
  virtual Status UpdateKey(const KeyRecord& key) = 0;
  // AddKeyVersion stores a new version and the updated record (its current_version, next
  // rotation date) in one transaction; kAlreadyExists if that version exists, kNotFound if the
  // key does not, kInvalidArgument and kAborted as for CreateKey/UpdateKey (the record's
  // revision is checked and advanced the same way). On any failure neither is stored.
  virtual Status AddKeyVersion(const KeyRecord& key, const KeyVersion& version) = 0;
  virtual StatusOr<KeyVersion> GetKeyVersion(std::string_view key_id, uint32_t version) = 0;
  // ListKeyVersions returns the key's versions, oldest first (kNotFound if the key is absent).
  virtual StatusOr<std::vector<KeyVersion>> ListKeyVersions(std::string_view key_id) = 0;
  // DeleteKey removes a key with its versions, aliases and tags (deletion after the waiting
  // period). kNotFound if absent.
  virtual Status DeleteKey(std::string_view key_id) = 0;

  // Aliases. CreateAlias: kAlreadyExists if the name is taken. UpdateAlias/DeleteAlias:
  // kNotFound if absent. CreateAlias/UpdateAlias to a key that does not exist: kNotFound.
  virtual Status CreateAlias(const AliasRecord& alias) = 0;
  virtual Status UpdateAlias(std::string_view alias_name, std::string_view key_id,
                             int64_t updated) = 0;
  virtual Status DeleteAlias(std::string_view alias_name) = 0;
  virtual StatusOr<AliasRecord> GetAlias(std::string_view alias_name) = 0;
  // ListAliases returns all aliases (or those of one key when key_id is set), by name; with
  // key_id set, kNotFound if that key does not exist.
  virtual StatusOr<std::vector<AliasRecord>> ListAliases(
      std::optional<std::string_view> key_id) = 0;

  // Tags: TagResource adds or overwrites; UntagResource removes the named keys (absent ones
  // are ignored); ListTags orders by tag key. All three: kNotFound if the key does not exist.
  virtual Status TagResource(std::string_view key_id, const std::vector<Tag>& tags) = 0;
  virtual Status UntagResource(std::string_view key_id,
                               const std::vector<std::string>& tag_keys) = 0;
  virtual StatusOr<std::vector<Tag>> ListTags(std::string_view key_id) = 0;

  // Access keys. PutAccessKey: kAlreadyExists for a duplicate id or name. DeleteAccessKey:
  // kNotFound if there is none.
  virtual Status PutAccessKey(const AccessKeyRecord& key) = 0;
  virtual StatusOr<AccessKeyRecord> GetAccessKey(std::string_view access_key_id) = 0;
  virtual StatusOr<std::vector<AccessKeyRecord>> ListAccessKeys() = 0;
  virtual Status DeleteAccessKey(std::string_view access_key_id) = 0;

  // Audit. AppendAudit stores a batch in one transaction; each record's seq must be the next
  // one (kFailedPrecondition otherwise, nothing stored). LastAudit is the newest record (with
  // seq 0 and empty fields when the log is empty); LastSignedAudit the newest record with a
  // signature (likewise seq 0 and empty fields when none has one). ReadAudit returns up to
  // `limit` records with seq >= from_seq, in order. An empty batch is a no-op; the first seq of
  // an empty log is 1, and seqs above INT64_MAX are refused (kInvalidArgument).
  //
  // Durability::kWritten stores the batch with write(2) but without waiting for stable storage:
  // it survives the death of any process at once, and a power loss once SyncAudit (or any
  // durable write, which is ordered after it) has returned. The audit writer's group commit
  // (docs/audit.md "Durability") builds on it. Every other mutation is always kDurable.
  // SignAudit sets the signature of the stored, still unsigned record `seq` (kNotFound if there
  // is none, kFailedPrecondition if it is signed already); SyncAudit makes every audit write
  // that returned before it was called durable, without blocking the store's other calls.
  virtual Status AppendAudit(const std::vector<AuditRecord>& records, Durability durability) = 0;
  virtual Status SignAudit(uint64_t seq, ByteSpan signature, Durability durability) = 0;
  virtual Status SyncAudit() = 0;
  virtual StatusOr<AuditRecord> LastAudit() = 0;
  virtual StatusOr<AuditRecord> LastSignedAudit() = 0;
  virtual StatusOr<std::vector<AuditRecord>> ReadAudit(uint64_t from_seq, size_t limit) = 0;

  // The change log. Every mutation of keys, key versions, aliases and tags (CreateKey,
  // UpdateKey, AddKeyVersion, DeleteKey, CreateAlias, UpdateAlias, DeleteAlias, TagResource,
  // UntagResource) appends, in its own transaction, one StateChange per key or alias it touched,
  // numbered in commit order (concurrent writers from several processes included: a change
  // never becomes visible with a lower version than one already visible). StateVersion is the
  // newest version (0 before any change). StateChangesSince returns the changes with a higher
  // version than `version`, oldest first, at most `limit`; kOutOfRange when changes after
  // `version` have been trimmed (the log keeps the newest 100,000), and when `version` is above
  // StateVersion (the database is not the one it was read from: restored from a backup, or a
  // standby promoted without the newest commits, which would give the same versions out
  // again): the caller reloads everything instead.
  virtual StatusOr<uint64_t> StateVersion() = 0;
  virtual StatusOr<std::vector<StateChange>> StateChangesSince(uint64_t version, size_t limit) = 0;

  // Audit logs of other nodes (a cluster shares one database; each node appends to its own log,
  // named by StoreOptions::audit_log; the calls above all act on that one). ListAuditLogs names
  // every log that has a record, sorted; ReadAuditLog is ReadAudit on the named log.
  virtual StatusOr<std::vector<std::string>> ListAuditLogs() = 0;
  virtual StatusOr<std::vector<AuditRecord>> ReadAuditLog(std::string_view log, uint64_t from_seq,
                                                          size_t limit) = 0;

  // Meta: small named values (e.g. "audit_public_key"). GetMeta: kNotFound if unset.
  virtual Status PutMeta(std::string_view name, std::string_view value) = 0;
  virtual StatusOr<std::string> GetMeta(std::string_view name) = 0;
};

// StoreOptions are the choices a store is opened with. audit_log names the audit log this
// store's audit calls act on: "" (the default, a single node's log) or the node's name in a
// cluster (1 to 64 characters of [A-Za-z0-9._-]; the open fails with kInvalidArgument
// otherwise).
struct StoreOptions {
  std::string audit_log;
};

// OpenSqliteStore opens (creating if needed, mode 0600) the SQLite database at `path`, sets
// WAL and synchronous=FULL, and applies any pending schema migrations (PRAGMA user_version
// records the schema version; a database from a newer custos is refused with
// kFailedPrecondition naming both versions; so is a SQLite file of another program). Fails
// (kUnavailable) rather than run on weaker guarantees if WAL, synchronous=FULL or foreign keys
// do not take effect. docs/storage.md describes the schema and the durability promise.
StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path,
                                                 StoreOptions options = {});

// OpenPostgresStore connects to the PostgreSQL database named by `url` (a libpq URI,
// postgresql://USER:PASSWORD@HOST:PORT/DB?PARAMS; several hosts with
// target_session_attrs=read-write find the primary) and applies any pending schema migrations
// in one transaction under an advisory lock, so nodes starting together migrate once. The
// tables live in the connection's current schema. Refused with kFailedPrecondition: a database
// from a newer custos (naming both versions) and a schema holding another program's tables; a
// malformed URL is kInvalidArgument (without quoting it: it may hold a password), an
// unreachable server or one running with fsync = off kUnavailable. The store keeps up to 8
// connections, made on demand, and reconnects by itself: a call whose connection broke runs
// once more on a fresh connection where that cannot apply it twice. Text fields must be UTF-8
// without NUL bytes (kInvalidArgument otherwise); descriptions, policies, tag values, meta
// values and audit entries may hold any bytes. docs/storage.md "PostgreSQL" has the details.
StatusOr<std::unique_ptr<Store>> OpenPostgresStore(const std::string& url,
                                                   StoreOptions options = {});

// OpenStore opens a PostgreSQL store for a postgresql:// or postgres:// URL and a SQLite store
// at any other `url_or_path`.
StatusOr<std::unique_ptr<Store>> OpenStore(const std::string& url_or_path,
                                           StoreOptions options = {});

// kSchemaVersion is the schema version this build writes.
// Version 2: keys.revision, the state change log, audit records keyed by (log, seq).
inline constexpr int kSchemaVersion = 2;

}  // namespace custos::store

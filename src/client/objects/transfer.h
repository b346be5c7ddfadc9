// Uploads and downloads of custos objects (docs/objects.md): the streaming pipelines behind
// `custos put` and `custos get`.
//
// Upload: the object (header || STREAM body, objects/object_format.h) is cut into parts whose
// boundaries fall on chunk boundaries; each part is produced by its own reader thread that preads
// the plaintext chunk by chunk and seals it into a small ring of buffers while the store sends the
// previous ones, so encryption overlaps network I/O and memory stays at a few chunks per part in
// flight. Every chunk index is sealed exactly once (no part is re-encrypted on retry), so no
// nonce is ever used twice even if the source file changes during the upload — a change is
// detected (short read, size or mtime change) and fails the upload, which the store aborts.
//
// Download: fetch the object's size and header (one request where the store can), check that the
// object's size is the one its header describes (so truncation and extension are refused before
// any key is asked for), obtain the data key once, then fetch the chunks the wanted plaintext
// range needs (the whole object, or only the chunks a --range touches) in chunk-aligned ranged
// GETs, decrypting each received piece where the store delivered it; each chunk is authenticated
// before its plaintext is written to an unnamed temporary file (O_TMPFILE) that becomes the
// destination only when every chunk authenticated. On any failure nothing is left behind, even
// after a crash.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/secret.h"
#include "crypto/ecdsa.h"
#include "protocol/custody/custody.h"
#include "protocol/stream/stream.h"
#include "client/kms/client.h"
#include "client/objects/object_format.h"
#include "client/objects/object_store.h"
#include "client/requester/partial_collector.h"

namespace custos::objects {

// DataKeyCustodian is who holds an object's data key: the appliance (KMS) or the two domains'
// keepers (dual control). One call per object in each direction.
class DataKeyCustodian {
 public:
  virtual ~DataKeyCustodian() = default;
  virtual ObjectMode mode() const = 0;
  // SealNewKey fills h.key_ref and h.wrapped_key (every other field is already set and bound)
  // and returns the fresh data key.
  virtual StatusOr<SecretBytes> SealNewKey(ObjectHeader& h) = 0;
  // OpenKey returns the data key of a parsed header. kIntegrity when the custodian refuses the
  // wrapped key as altered; kPermissionDenied when it belongs to another key or custody.
  virtual StatusOr<SecretBytes> OpenKey(const ObjectHeader& h) = 0;
};

// NewApplianceCustodian uses a KMS endpoint (the appliance, or AWS KMS): GenerateDataKey
// (AES_256) under `key_id` on upload, Decrypt on download, both with the encryption context
// {"custos:object-id": <hex object id>}. `key_id` may be empty for downloads (the header names
// the key); when set, a download passes it as KeyId and the KMS refuses another key's object.
std::unique_ptr<DataKeyCustodian> NewApplianceCustodian(kms::KmsClient client, std::string key_id);

// DualControlSettings: the verified custody descriptor (its joint key Y seals new objects) and,
// for downloads, the client key and keeper choice used to collect S = y*R from both domains.
struct DualControlSettings {
  custody::CustodyDescriptor custody;
  std::optional<crypto::SigningKey> client_key;  // needed to download
  std::vector<std::string> keeper_ids;
  std::map<std::string, std::string> url_override;
  std::string ca_file;
  std::ostream* log = nullptr;
};
std::unique_ptr<DataKeyCustodian> NewDualControlCustodian(DualControlSettings settings);

// CustodianFactory returns the custodian for an object's mode (downloads learn the mode from
// the header); an error says what configuration is missing.
using CustodianFactory = std::function<StatusOr<DataKeyCustodian*>(ObjectMode)>;

// TransferTuning: the layout of transfers.
struct TransferTuning {
  uint32_t chunk_size = files::kDefaultChunkSize;  // uploads only (downloads read the header)
  // part_size: target bytes per multipart part / ranged GET (rounded up to whole chunks);
  // objects up to this size go in one PUT. At least 5 MiB (S3's minimum part).
  uint64_t part_size = 8u << 20;
};

struct PutResult {
  uint64_t plaintext_bytes = 0;
  uint64_t stored_bytes = 0;
  size_t parts = 0;
  std::string key_ref;  // "" for plain uploads
};

// PutObject uploads the regular file `src_path` under `key`. custodian == nullptr uploads the
// bytes as they are (--plain). `stats` (optional) counts stored bytes as they are sent.
StatusOr<PutResult> PutObject(const std::string& src_path, ObjectStore& store, const std::string& key,
                              DataKeyCustodian* custodian, const TransferTuning& tuning,
                              TransferStats* stats = nullptr);

// PlaintextRange is [first, last] inclusive, as in an HTTP Range header; last = nullopt means
// to the end.
struct PlaintextRange {
  uint64_t first = 0;
  std::optional<uint64_t> last;
};
// ParseRange accepts "A-B" and "A-" (decimal byte offsets, A <= B).
StatusOr<PlaintextRange> ParseRange(const std::string& text);

struct GetResult {
  uint64_t plaintext_bytes = 0;  // bytes written to the destination
  uint64_t fetched_bytes = 0;    // stored bytes fetched (header and chunks)
  uint64_t object_size = 0;      // stored size
  std::optional<ObjectMode> mode;  // nullopt for --plain
};

// GetPlanned is called once the download knows how many stored bytes it will fetch (for the
// progress bar).
using GetPlanned = std::function<void(uint64_t bytes_to_fetch)>;

// GetObject downloads `key` into `dest_path`. plain = true copies the stored bytes as they are;
// otherwise the object must be a custos object and `custodians` supplies its data key. `range`
// selects plaintext bytes (stored bytes for plain). The destination appears only if everything
// fetched authenticated; an existing destination is replaced atomically.
StatusOr<GetResult> GetObject(ObjectStore& store, const std::string& key, const std::string& dest_path,
                              bool plain, const CustodianFactory& custodians, const TransferTuning& tuning,
                              std::optional<PlaintextRange> range = std::nullopt,
                              TransferStats* stats = nullptr, const GetPlanned& planned = nullptr);

// ReadObjectHeader fetches and parses an object's header (for `custos ls --long`-style
// inspection and tests); kInvalidArgument when the object is not a custos object.
StatusOr<ObjectHeader> ReadObjectHeader(ObjectStore& store, const std::string& key);

}  // namespace custos::objects

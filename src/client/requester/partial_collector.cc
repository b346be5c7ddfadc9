#include "client/requester/partial_collector.h"

#include <future>
#include <set>

#include "crypto/hash.h"
#include "crypto/hpke.h"
#include "crypto/random.h"
#include "keeper/api/keeper_client.h"
#include "keeper/api/protocol.h"
#include "protocol/threshold/partial.h"
#include "protocol/threshold/shamir.h"

namespace custos::requester {

using crypto::Point;
using custody::Domain;
using nlohmann::json;
namespace hpke = crypto::hpke;

namespace {

// AskOne requests, opens and verifies one keeper's partial decryption.
StatusOr<threshold::PartialDecryption> AskOne(const CollectOptions& opts,
                                              const custody::KeeperRecord& k,
                                              const hpke::PrivateKey& eph, const Point& r,
                                              ByteSpan context) {
  keeper::PartialRequest req;
  req.custody_fp = opts.custody->Fingerprint();
  req.keeper_id = k.id;
  req.r = r;
  req.context.assign(context.begin(), context.end());
  req.requester_key = eph.public_key();
  req.timestamp = keeper::UnixNow();
  req.nonce = crypto::RandomBytes(16);
  req.client_key = opts.client_key->verifying_key().point();
  Bytes encoded = req.Encode();
  Bytes sig = opts.client_key->Sign(keeper::PartialRequest::SignedBytes(encoded));
  auto url = opts.url_override.count(k.id) ? opts.url_override.at(k.id) : k.url;
  ASSIGN_OR_RETURN(keeper::KeeperClient client, keeper::KeeperClient::Create(url, opts.ca_file));
  ASSIGN_OR_RETURN(json resp, client.Call("/v1/partial", {{"request", Base64Encode(encoded)},
                                                          {"sig", HexEncode(sig)}}));
  ASSIGN_OR_RETURN(Bytes sealed, keeper::GetBase64(resp, "sealed"));
  auto plain = hpke::OpenBase(eph, keeper::PartialResponseInfo(encoded), AsBytes(k.id), sealed);
  if (!plain.ok()) return IntegrityError("its sealed answer does not open");
  ASSIGN_OR_RETURN(auto partial, threshold::PartialDecryption::Decode(*plain));
  if (partial.index != k.index) return IntegrityError("its answer carries another share index");
  Status st = threshold::VerifyPartial(partial, k.verification_key, r, crypto::Sha256Bytes(encoded));
  if (!st.ok()) return IntegrityError("its partial decryption proof does not verify (wrong partial)");
  return partial;
}

}  // namespace

StatusOr<Point> CollectSharedPoint(const CollectOptions& opts, const Point& r, ByteSpan context) {
  const custody::CustodyDescriptor& c = *opts.custody;
  std::set<std::string> seen;
  for (const std::string& id : opts.keeper_ids) {
    if (c.FindKeeper(id) == nullptr) return InvalidArgument("custody.json lists no keeper " + id);
    if (!seen.insert(id).second) return InvalidArgument("keeper " + id + " is named twice");
  }
  hpke::PrivateKey eph = hpke::PrivateKey::Generate();
  struct DomainState {
    Domain domain;
    const custody::DomainRecord* rec;
    std::vector<const custody::KeeperRecord*> order;
    size_t next = 0;
    std::vector<uint32_t> indices;
    std::vector<Point> ds;
    std::string failures;
  };
  std::vector<DomainState> domains;
  for (Domain d : {Domain::kProvider, Domain::kCustomer}) {
    DomainState st{d, &c.domain(d), {}, 0, {}, {}, {}};
    if (opts.keeper_ids.empty()) {
      for (const auto& k : st.rec->keepers) st.order.push_back(&k);
    } else {
      for (const std::string& id : opts.keeper_ids) {
        const custody::KeeperRecord* k = c.FindKeeper(id);
        if (k->domain == d) st.order.push_back(k);
      }
    }
    domains.push_back(std::move(st));
  }
  // Ask, in parallel, as many keepers of each domain as are still missing; replace each one
  // that fails by the next in line until every domain has its threshold or none are left.
  for (;;) {
    std::vector<std::pair<DomainState*, const custody::KeeperRecord*>> batch;
    for (DomainState& st : domains) {
      size_t missing = st.rec->threshold - std::min<size_t>(st.indices.size(), st.rec->threshold);
      for (size_t k = 0; k < missing && st.next < st.order.size(); ++k)
        batch.emplace_back(&st, st.order[st.next++]);
    }
    if (batch.empty()) break;
    std::vector<std::future<StatusOr<threshold::PartialDecryption>>> futures;
    for (auto& [st, k] : batch)
      futures.push_back(std::async(std::launch::async, [&, k = k] { return AskOne(opts, *k, eph, r, context); }));
    for (size_t i = 0; i < batch.size(); ++i) {
      auto p = futures[i].get();
      DomainState& st = *batch[i].first;
      const custody::KeeperRecord& k = *batch[i].second;
      if (!p.ok()) {
        std::string why = k.id + ": " + p.status().message();
        if (opts.log) *opts.log << "keeper " << why << "; trying another keeper\n";
        st.failures += (st.failures.empty() ? "" : "; ") + why;
        continue;
      }
      st.indices.push_back(p->index);
      st.ds.push_back(p->d);
    }
  }
  Point s;
  for (DomainState& st : domains) {
    if (st.indices.size() < st.rec->threshold)
      return PermissionDenied(
          std::string("not enough ") + custody::DomainName(st.domain) + " keepers: " +
          std::to_string(st.indices.size()) + " of the " + std::to_string(st.rec->threshold) +
          " required gave a valid partial decryption" +
          (st.failures.empty() ? " (none were asked)" : " (" + st.failures + ")"));
    ASSIGN_OR_RETURN(Point sd, threshold::InterpolatePointsAtZero(st.indices, st.ds));
    s += sd;
  }
  return s;
}

}  // namespace custos::requester

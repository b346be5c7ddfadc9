// The ObjectStore behaviour shared by every backend (objects/object_store.h).
#include "client/objects/object_store.h"

#include <algorithm>

namespace custos::objects {
namespace {

// PrefixSink collects the one range GetPrefix asks for.
class PrefixSink : public RangeSink {
 public:
  explicit PrefixSink(Bytes& out) : out_(out) {}
  StatusOr<std::unique_ptr<BodySink>> Open(const ByteRange&) override {
    return std::unique_ptr<BodySink>(new Body(out_));
  }

 private:
  class Body : public BodySink {
   public:
    explicit Body(Bytes& out) : out_(out) {}
    Status Write(std::span<const uint8_t> bytes) override {
      out_.insert(out_.end(), bytes.begin(), bytes.end());
      return Status::Ok();
    }
    Status Finish() override { return Status::Ok(); }

   private:
    Bytes& out_;
  };
  Bytes& out_;
};

}  // namespace

StatusOr<ObjectPrefix> ObjectStore::GetPrefix(const std::string& key, uint64_t max_bytes) {
  ASSIGN_OR_RETURN(ObjectInfo info, Head(key));
  ObjectPrefix prefix{std::move(info), {}};
  const uint64_t n = std::min(prefix.info.size, max_bytes);
  if (n == 0) return prefix;
  PrefixSink sink(prefix.bytes);
  RETURN_IF_ERROR(Get(key, {{0, n}}, sink, nullptr, prefix.info.size));
  return prefix;
}

}  // namespace custos::objects

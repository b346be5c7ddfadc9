#include "common/secret.h"

#include <openssl/crypto.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <new>

namespace custos {

namespace {

// LockedArena hands out the buffers of every SecretBytes from memory that is locked (mlock,
// best effort: RLIMIT_MEMLOCK may refuse) and left out of core dumps (MADV_DONTDUMP), in
// 64 KiB chunks carved into slots of one size class each (32 B .. 4 KiB, powers of two).
// A freed slot is wiped by its SecretBytes and kept on its class's free list for the next
// secret of that size: no system call per secret, and no page unlocked while another secret
// still lives on it (munlock is not counted per buffer). Larger secrets get pages of their own.
// Chunks are never returned: the arena's size is the peak of what was live at once.
class LockedArena {
 public:
  static LockedArena& Get() {
    static LockedArena* arena = new LockedArena;  // never destroyed: secrets outlive statics
    return *arena;
  }

  uint8_t* Allocate(size_t size) {
    const int c = ClassOf(size);
    if (c < 0) return AllocatePages(size);
    std::lock_guard lock(mu_);
    Slot* slot = free_[c];
    if (slot == nullptr) {
      if (!Carve(c)) return nullptr;
      slot = free_[c];
    }
    free_[c] = slot->next;
    auto* p = reinterpret_cast<uint8_t*>(slot);
    std::memset(p, 0, sizeof(Slot));  // the rest of a slot is zero: wiped when freed
    return p;
  }

  // Free takes back a buffer its SecretBytes has wiped.
  void Free(uint8_t* p, size_t size) {
    const int c = ClassOf(size);
    if (c < 0) return FreePages(p, size);
    std::lock_guard lock(mu_);
    auto* slot = reinterpret_cast<Slot*>(p);
    slot->next = free_[c];
    free_[c] = slot;
  }

  LockedArenaStats stats() {
    std::lock_guard lock(mu_);
    return stats_;
  }

 private:
  struct Slot {
    Slot* next;
  };
  static constexpr size_t kChunk = 64 << 10;
  static constexpr int kClasses = 8;  // 32, 64, ..., 4096
  static constexpr size_t kLargest = size_t{32} << (kClasses - 1);

  static int ClassOf(size_t size) {
    if (size > kLargest) return -1;
    int c = 0;
    while ((size_t{32} << c) < size) ++c;
    return c;
  }

  static void* MapLocked(size_t bytes, LockedArenaStats& stats) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    (void)madvise(p, bytes, MADV_DONTDUMP);
    if (mlock(p, bytes) == 0) {
      stats.locked_bytes += bytes;
    } else {
      ++stats.lock_failures;
    }
    return p;
  }

  // Carve maps a chunk for class c and puts its slots on the free list. Requires mu_.
  bool Carve(int c) {
    void* chunk = MapLocked(kChunk, stats_);
    if (chunk == nullptr) return false;
    ++stats_.chunks;
    const size_t slot = size_t{32} << c;
    auto* base = static_cast<uint8_t*>(chunk);
    for (size_t off = kChunk; off >= slot; off -= slot) {
      auto* s = reinterpret_cast<Slot*>(base + off - slot);
      s->next = free_[c];
      free_[c] = s;
    }
    return true;
  }

  uint8_t* AllocatePages(size_t size) {
    std::lock_guard lock(mu_);
    return static_cast<uint8_t*>(MapLocked(PageRound(size), stats_));
  }
  void FreePages(uint8_t* p, size_t size) {
    (void)munlock(p, PageRound(size));
    munmap(p, PageRound(size));
  }
  static size_t PageRound(size_t size) {
    static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    return (size + page - 1) / page * page;
  }

  std::mutex mu_;
  Slot* free_[kClasses] = {};  // guarded by mu_
  LockedArenaStats stats_;     // guarded by mu_
};

}  // namespace

LockedArenaStats GetLockedArenaStats() { return LockedArena::Get().stats(); }

SecretBytes::SecretBytes(size_t size) : size_(size) {
  if (size_ == 0) return;
  data_ = LockedArena::Get().Allocate(size_);
  if (data_ == nullptr) throw std::bad_alloc();
}

SecretBytes SecretBytes::CopyFrom(std::span<const uint8_t> data) {
  SecretBytes s(data.size());
  if (!data.empty()) std::memcpy(s.data_, data.data(), data.size());
  return s;
}

SecretBytes SecretBytes::CopyFrom(std::string_view data) {
  return CopyFrom(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data.data()),
                                           data.size()));
}

SecretBytes::~SecretBytes() { Release(); }

void SecretBytes::Release() {
  if (data_ != nullptr) {
    OPENSSL_cleanse(data_, size_);
    LockedArena::Get().Free(data_, size_);
  }
  data_ = nullptr;
  size_ = 0;
}

SecretBytes::SecretBytes(SecretBytes&& other) noexcept : data_(other.data_), size_(other.size_) {
  other.data_ = nullptr;
  other.size_ = 0;
}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = other.data_;
    size_ = other.size_;
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

SecretBytes SecretBytes::Clone() const { return CopyFrom(Expose()); }

bool SecretBytes::ConstantTimeEquals(const SecretBytes& other) const {
  return custos::ConstantTimeEquals(Expose(), other.Expose());
}

bool ConstantTimeEquals(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

void WipeBytes(std::vector<uint8_t>& buf) {
  if (!buf.empty()) OPENSSL_cleanse(buf.data(), buf.size());
  buf.clear();
}

void WipeBytes(std::string& buf) {
  if (!buf.empty()) OPENSSL_cleanse(buf.data(), buf.size());
  buf.clear();
}

}  // namespace custos

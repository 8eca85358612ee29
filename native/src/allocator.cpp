// A caching CPU allocator for large tensors, installed in place of libtorch's default.
//
// Why: with glibc malloc, loops that make and free multi-megabyte tensors grow resident memory
// by gigabytes (its dynamic mmap threshold moves large blocks onto the heap, where they
// fragment), and fresh mmap'ed blocks are no answer either: first-touch page faults made a 4 MB
// add 18× slower here. Deep-learning loops repeat the same sizes, so freed large blocks are kept
// by size and handed out again (as PyTorch's CUDA allocator does), up to a bounded cache.
// Small blocks go to libtorch's own allocation functions.
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <sys/mman.h>
#include <unistd.h>
#include <torch/csrc/api/include/torch/version.h>

#include <cstdlib>
#include <map>
#include <unordered_map>
#include <mutex>
#include <vector>

#include "bridge.h"

namespace moa {
namespace {

constexpr size_t kLarge = 256 * 1024;  // blocks at least this big are cached
constexpr size_t kPage = 4096;

class CachingCpuAllocator final : public at::Allocator {
 public:
  explicit CachingCpuAllocator(size_t limit) : limit_(limit) {}

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
  at::DataPtr allocate(size_t n) override { return allocateBlock(n); }
  void copy_data(void* dest, const void* src, std::size_t count) const override { std::memcpy(dest, src, count); }
#else
  at::DataPtr allocate(size_t n) const override { return const_cast<CachingCpuAllocator*>(this)->allocateBlock(n); }
#endif
  // libtorch's raw allocation API (oneDNN uses it) needs data == context and a plain deleter.
  at::DeleterFnPtr raw_deleter() const override { return &deleteBlock; }

  AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return {static_cast<int64_t>(inUse_), static_cast<int64_t>(cached_), static_cast<int64_t>(limit_)};
  }

  void emptyCache() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [size, blocks] : free_)
      for (void* p : blocks) munmap(p, size);
    free_.clear();
    cached_ = 0;
  }

  void setLimit(size_t limit) {
    std::lock_guard<std::mutex> lock(mutex_);
    limit_ = limit;
    trimTo(limit_, 0);
  }

 private:
  static void deleteBlock(void* p);

  at::DataPtr allocateBlock(size_t n) {
    void* p = nullptr;
    if (n < kLarge) {
      p = c10::alloc_cpu(n);
    } else {
      size_t size = (n + kPage - 1) / kPage * kPage;
      p = takeCached(size);
      if (!p) p = mapFresh(size);
      std::lock_guard<std::mutex> lock(mutex_);
      sizes_[p] = size;
    }
    return {p, p, &deleteBlock, at::Device(at::DeviceType::CPU)};
  }

  void* takeCached(size_t size) {
    std::lock_guard<std::mutex> lock(mutex_);
    inUse_ += size;
    auto it = free_.find(size);
    if (it == free_.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    cached_ -= size;
    return p;
  }

  void* mapFresh(size_t size) {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      emptyCache();  // give back what is cached, then try once more
      p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    }
    if (p == MAP_FAILED) {
      std::lock_guard<std::mutex> lock(mutex_);
      inUse_ -= size;
      TORCH_CHECK(false, "out of memory: could not allocate ", size, " bytes for a tensor");
    }
    return p;
  }

  // Returns a block: large ones to the cache (or the system, past the limit), small ones to libtorch.
  void release(void* ptr) {
    size_t size = 0;
    bool unmap = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto found = sizes_.find(ptr);
      if (found != sizes_.end()) {
        size = found->second;
        sizes_.erase(found);
        inUse_ -= size;
        trimTo(limit_ > size ? limit_ - size : 0, size);
        unmap = cached_ + size > limit_;
        if (!unmap) {
          free_[size].push_back(ptr);
          cached_ += size;
        }
      }
    }
    if (size == 0) c10::free_cpu(ptr);
    else if (unmap) munmap(ptr, size);
  }

  // Drops cached blocks (other sizes than `keep` first, largest first) until at most `target` stays.
  void trimTo(size_t target, size_t keep) {
    for (auto it = free_.rbegin(); it != free_.rend() && cached_ > target; ++it) {
      if (it->first == keep) continue;
      while (!it->second.empty() && cached_ > target) {
        munmap(it->second.back(), it->first);
        it->second.pop_back();
        cached_ -= it->first;
      }
    }
  }

  std::mutex mutex_;
  std::map<size_t, std::vector<void*>> free_;
  std::unordered_map<void*, size_t> sizes_;  // large blocks in use
  size_t cached_ = 0, inUse_ = 0, limit_;
};

CachingCpuAllocator* instance = nullptr;

void CachingCpuAllocator::deleteBlock(void* p) {
  if (p) instance->release(p);
}

}  // namespace

// Installs the allocator (once) with a cache of MOA_CPU_CACHE_MB megabytes, by default a quarter
// of physical memory: enough to hold a model's recurring activations (attention scores at 64×64
// latents are 512 MB each), whose fresh pages would otherwise cost more than the math.
void installAllocator() {
  static std::once_flag once;  // worker threads each load the addon; install once per process
  std::call_once(once, [] {
    size_t bytes = static_cast<size_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<size_t>(sysconf(_SC_PAGESIZE)) / 4;
    if (const char* env = std::getenv("MOA_CPU_CACHE_MB")) bytes = static_cast<size_t>(std::strtoull(env, nullptr, 10)) << 20;
    instance = new CachingCpuAllocator(bytes);  // lives as long as the process: tensors may outlive the addon
    c10::SetCPUAllocator(instance, /*priority=*/100);
  });
}

AllocatorStats allocatorStats() { return instance ? instance->stats() : AllocatorStats{}; }
void emptyCache() {
  if (instance) instance->emptyCache();
}
void setCacheLimit(int64_t bytes) {
  TORCH_CHECK(bytes >= 0, "the cache limit must be >= 0 bytes");
  if (instance) instance->setLimit(static_cast<size_t>(bytes));
}

}  // namespace moa

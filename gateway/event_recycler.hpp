#pragma once

#include <cstddef>
#include <memory>
#include <new>
#include <vector>

namespace gwx::gateway {

/// Recycled objects of type T, each in a shared_ptr: when the last owner lets one go, on
/// whatever thread, the object and its shared_ptr control block go back to that thread's
/// stock instead of the heap, and the next make() on that thread takes them again. A T that
/// holds buffers keeps them, so making one in a steady state allocates nothing. The stock is
/// bounded (k_keep objects per thread), and an object whose `worth_keeping()` is false (e.g.
/// one whose buffer grew large) is freed as usual.
///
/// T must be default-constructible and have `void recycle()` (reset to a fresh state, keeping
/// its buffers) and `bool worth_keeping() const`.
template <typename T, std::size_t k_keep = 1024>
class event_recycler {
 public:
  /// A fresh T (recycled, or new) owned by the returned pointer.
  static std::shared_ptr<T> make() {
    T* obj = object_stock::dead() ? nullptr : objects().take();
    if (obj == nullptr) {
      obj = new T();
    }
    return std::shared_ptr<T>(obj, give_back{}, block_allocator<T>{});
  }

  /// Objects in this thread's stock (tests).
  static std::size_t stocked() { return object_stock::dead() ? 0 : objects().size(); }

 private:
  /// A bounded stack of this thread's free pointers; freed for good when the thread ends.
  template <typename P, typename Free>
  class stock {
   public:
    ~stock() {
      dead() = true;
      for (auto* p : free_) {
        Free{}(p);
      }
    }
    P* take() {
      if (free_.empty()) {
        return nullptr;
      }
      P* p = free_.back();
      free_.pop_back();
      return p;
    }
    /// False when full: the caller frees `p` itself.
    bool put(P* p) {
      if (free_.size() >= k_keep) {
        return false;
      }
      if (free_.capacity() == 0) {
        free_.reserve(k_keep);
      }
      free_.push_back(p);
      return true;
    }
    std::size_t size() const { return free_.size(); }

    /// Whether this thread's stock is gone (the thread is ending). Trivially destructible, so
    /// still readable then: callers check it before touching the stock, and an object let go
    /// after that is freed, not stocked.
    static bool& dead() {
      thread_local bool d = false;
      return d;
    }

   private:
    std::vector<P*> free_;
  };

  struct delete_object {
    void operator()(T* p) const { delete p; }
  };
  struct delete_block {
    void operator()(void* p) const { ::operator delete(p); }
  };

  using object_stock = stock<T, delete_object>;

  static object_stock& objects() {
    thread_local object_stock s;
    return s;
  }

  struct give_back {
    void operator()(T* p) const {
      if (object_stock::dead() || !p->worth_keeping()) {
        delete p;
        return;
      }
      p->recycle();
      if (!objects().put(p)) {
        delete p;
      }
    }
  };

  /// The control blocks' allocator: blocks of one size, stocked per thread like the objects.
  template <typename U>
  struct block_allocator {
    using value_type = U;
    block_allocator() = default;
    template <typename V>
    block_allocator(const block_allocator<V>&) {}  // NOLINT(google-explicit-constructor)

    // One stock per control-block type U (with its own dead() flag), so every block in it
    // has U's size.
    using block_stock = stock<U, delete_block>;
    static block_stock& blocks() {
      thread_local block_stock s;
      return s;
    }
    U* allocate(std::size_t n) {
      if (n == 1 && !block_stock::dead()) {
        if (U* p = blocks().take()) {
          return p;
        }
      }
      return static_cast<U*>(::operator new(n * sizeof(U)));
    }
    void deallocate(U* p, std::size_t n) {
      if (n == 1 && !block_stock::dead() && blocks().put(p)) {
        return;
      }
      ::operator delete(p);
    }
    template <typename V>
    bool operator==(const block_allocator<V>&) const {
      return true;
    }
    template <typename V>
    bool operator!=(const block_allocator<V>&) const {
      return false;
    }
  };
};

}  // namespace gwx::gateway

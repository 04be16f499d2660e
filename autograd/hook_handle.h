// File: autograd/hook_handle.h
// -----------------------------------------------------------------------------
//
// `HookHandle` removes the hook whose registration returned it, like the
// handle of PyTorch's `register_hook` / `register_forward_hook`: `Remove()`
// takes the hook out (a second call, or one after its owner is gone, does
// nothing); dropping the handle keeps the hook.
//
// `HookList<Fn>` is the ordered list behind each kind of hook: hooks run in
// the order they were added, and a hook removed while the list runs is
// skipped from then on.
//
// Example:
//
//   HookHandle h = param.RegisterHook([](const Tensor& g) { ...; return g; });
//   ...
//   h.Remove();

#ifndef AUTOGRAD_HOOK_HANDLE_H_
#define AUTOGRAD_HOOK_HANDLE_H_

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

namespace dive::autograd {

class HookHandle {
 public:
  HookHandle() = default;
  explicit HookHandle(std::function<void()> remove)
      : remove_(std::move(remove)) {}
  void Remove() {
    if (remove_) std::exchange(remove_, nullptr)();
  }

 private:
  std::function<void()> remove_;
};

template <typename Fn>
class HookList {
 public:
  bool empty() const { return hooks_ == nullptr || hooks_->empty(); }

  HookHandle Add(Fn fn) {
    if (hooks_ == nullptr) hooks_ = std::make_shared<Entries>();
    const int64_t id = next_id_++;
    hooks_->emplace_back(id, std::move(fn));
    return HookHandle([weak = std::weak_ptr<Entries>(hooks_), id] {
      if (std::shared_ptr<Entries> hooks = weak.lock()) {
        hooks->erase(
            std::remove_if(hooks->begin(), hooks->end(),
                           [id](const auto& e) { return e.first == id; }),
            hooks->end());
      }
    });
  }

  // Calls `call(fn)` for each hook in order; hooks removed meanwhile are
  // skipped.
  template <typename Call>
  void ForEach(Call call) const {
    if (empty()) return;
    const Entries snapshot = *hooks_;  // a hook may remove itself
    for (const auto& [id, fn] : snapshot) {
      const bool live =
          std::any_of(hooks_->begin(), hooks_->end(),
                      [id = id](const auto& e) { return e.first == id; });
      if (live) call(fn);
    }
  }

 private:
  using Entries = std::vector<std::pair<int64_t, Fn>>;
  std::shared_ptr<Entries> hooks_;
  int64_t next_id_ = 0;
};

}  // namespace dive::autograd

#endif  // AUTOGRAD_HOOK_HANDLE_H_

#include "common/cluster/types.hpp"

namespace gwx {
namespace {

class api_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "gwx.api"; }
  std::string message(int value) const override {
    switch (static_cast<api_errc>(value)) {
      case api_errc::would_deadlock:
        return "blocking query called on the network thread";
      case api_errc::stopped:
        return "cluster connection stopped";
      case api_errc::timed_out:
        return "no answer within the timeout";
    }
    return "unknown gwx.api error";
  }
};

}  // namespace

const std::error_category& api_category() {
  static const api_category_impl category;
  return category;
}

std::error_code make_error_code(api_errc e) {
  return {static_cast<int>(e), api_category()};
}

}  // namespace gwx

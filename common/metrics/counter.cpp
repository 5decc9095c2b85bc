#include "common/metrics/counter.hpp"

#include "common/metrics/text_format.hpp"

namespace gwx::metrics {

void counter_family::render_samples(std::string& out) const {
  children_.visit([&](const std::string& pairs, const detail::counter_cell& cell) {
    append_sample_prefix(out, name(), pairs);
    append_uint(out, cell.value.load(std::memory_order_relaxed));
    out += '\n';
  });
}

}  // namespace gwx::metrics

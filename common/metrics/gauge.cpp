#include "common/metrics/gauge.hpp"

#include "common/metrics/text_format.hpp"

namespace gwx::metrics {

void gauge_family::render_samples(std::string& out) const {
  children_.visit([&](const std::string& pairs, const detail::gauge_cell& cell) {
    append_sample_prefix(out, name(), pairs);
    append_int(out, cell.value.load(std::memory_order_relaxed));
    out += '\n';
  });
}

}  // namespace gwx::metrics

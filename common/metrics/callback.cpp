#include "common/metrics/callback.hpp"

#include <memory>
#include <stdexcept>
#include <utility>

#include "common/metrics/text_format.hpp"

namespace gwx::metrics {

callback_registration::callback_registration(callback_registration&& other) noexcept
    : family_(std::exchange(other.family_, nullptr)), key_(std::move(other.key_)) {}

callback_registration& callback_registration::operator=(callback_registration&& other) noexcept {
  if (this != &other) {
    reset();
    family_ = std::exchange(other.family_, nullptr);
    key_ = std::move(other.key_);
  }
  return *this;
}

void callback_registration::reset() {
  if (family_ != nullptr) {
    family_->children_.erase(key_);
    family_ = nullptr;
    key_.clear();
  }
}

callback_registration callback_family::add(std::vector<std::string> values, read_fn read) {
  if (!read) {
    throw std::invalid_argument("metric " + name() + ": empty callback");
  }
  auto key = make_key(std::move(values));
  auto pairs = render_label_pairs(key);
  if (!children_.insert(key, std::move(pairs), std::make_unique<cell>(cell{std::move(read)}))) {
    throw std::invalid_argument("metric " + name() + ": a callback for the same label values " +
                                "is already registered");
  }
  return {this, std::move(key)};
}

void callback_family::render_samples(std::string& out) const {
  children_.visit([&](const std::string& pairs, const cell& child) {
    double value = 0;
    try {
      value = child.read();
    } catch (...) {  // a broken reader costs its own sample, not the scrape
      return;
    }
    append_sample_prefix(out, name(), pairs);
    append_double(out, value);
    out += '\n';
  });
}

}  // namespace gwx::metrics

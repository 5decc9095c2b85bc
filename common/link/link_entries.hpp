#pragma once

// The repeated key/value entries of link v2 (SessionEntry, CountEntry, UidClientsEntry) that
// stand for maps whose keys can be client-chosen bytes (a protobuf map key cannot be `bytes`).
// On the wire they are maps; in code they are read like one: when a key repeats, the last
// entry wins.

#include <string>
#include <string_view>

#include "gwx/link/v2/link.pb.h"

namespace gwx::link_entries {

/// Appends one entry per element of `in` (any map of key to value) to `out`.
template <class Entries, class Map>
void append(Entries& out, const Map& in) {
  out.Reserve(out.size() + static_cast<int>(in.size()));
  for (const auto& [key, value] : in) {
    auto* e = out.Add();
    e->set_key(key);
    e->set_value(value);
  }
}

/// The entries as a map (std::map or std::unordered_map of key to value); the last one wins.
template <class Map, class Entries>
Map to_map(const Entries& in) {
  Map out;
  for (const auto& e : in) {
    out.insert_or_assign(e.key(), e.value());
  }
  return out;
}

/// The (last) entry with this key, or nullptr.
template <class Entries>
auto find(const Entries& in, std::string_view key) -> decltype(&*in.begin()) {
  for (int i = in.size() - 1; i >= 0; --i) {
    if (in.Get(i).key() == key) {
      return &in.Get(i);
    }
  }
  return nullptr;
}

/// The (last) entry with this key, added when there is none.
template <class Entries>
auto find_or_add(Entries& in, std::string_view key) -> decltype(in.Add()) {
  for (int i = in.size() - 1; i >= 0; --i) {
    if (in.Get(i).key() == key) {
      return in.Mutable(i);
    }
  }
  auto* e = in.Add();
  e->set_key(std::string(key));
  return e;
}

}  // namespace gwx::link_entries

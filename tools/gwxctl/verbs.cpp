#include "tools/gwxctl/verbs.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <set>
#include <thread>

namespace gwx::ctl {
namespace {

using args_t = std::vector<std::string>;
using ms = std::chrono::milliseconds;

// Words from `from` on, joined by single spaces: the message of a push.
std::string join_from(const args_t& args, std::size_t from) {
  std::string out;
  for (std::size_t i = from; i < args.size(); ++i) {
    out += (i == from ? "" : " ") + args[i];
  }
  return out;
}

args_t split_commas(const std::string& s) {
  args_t out;
  std::size_t start = 0;
  while (start <= s.size()) {
    const auto comma = std::min(s.find(',', start), s.size());
    if (comma > start) {
      out.push_back(s.substr(start, comma - start));
    }
    start = comma + 1;
  }
  return out;
}

session_map parse_pairs(const args_t& args, std::size_t from) {
  session_map out;
  for (std::size_t i = from; i < args.size(); ++i) {
    const auto eq = args[i].find('=');
    if (eq == std::string::npos || eq == 0) {
      throw std::invalid_argument("expected key=value, got '" + args[i] + "'");
    }
    out[args[i].substr(0, eq)] = args[i].substr(eq + 1);
  }
  return out;
}

int report_missing(const std::vector<std::string>& missing, std::string_view what) {
  for (const auto& g : missing) {
    std::cerr << "gwxctl: " << what << " " << g << "\n";
  }
  return missing.empty() ? k_ok : k_failed;
}

// After a push: wait until every linked gateway has processed it.
int flushed(Client& c, ms timeout) {
  return report_missing(c.flush(timeout), "push not confirmed by gateway");
}

// Prints a query's value with `print`, then the gateways that did not answer.
template <typename T, typename Print>
int answer(const result<T>& r, Print print) {
  if (r.error) {
    std::cerr << "gwxctl: " << r.error.message() << "\n";
    return k_failed;
  }
  print(r.value);
  std::cout.flush();
  return report_missing(r.missing_gateways, "no answer from gateway");
}

void print_lines(const std::vector<std::string>& v) {
  for (const auto& s : v) {
    std::cout << s << "\n";
  }
}

std::string join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (const auto& s : v) {
    out += (out.empty() ? "" : std::string(sep)) + s;
  }
  return out;
}

int stats(Client& c, const args_t&, ms timeout) {
  auto r = c.get_stats(timeout);
  if (r.error) {
    std::cerr << "gwxctl: " << r.error.message() << "\n";
    return k_failed;
  }
  std::uint64_t clients = 0;
  std::uint64_t in = 0;
  std::uint64_t out = 0;
  std::set<std::string> workers;
  for (const auto& s : r.value) {
    std::cout << s.internal_address << " id=" << s.gateway_id << " clients=" << s.clients
              << " groups=" << s.groups << " uids=" << s.uids << " workers=" << s.workers.size()
              << (s.workers.empty() ? "" : "(" + join(s.workers, ",") + ")")
              << " messages_in=" << s.messages_in << " messages_out=" << s.messages_out
              << " threads=" << s.threads << " events_queued=" << s.events_queued
              << " events_in_flight=" << s.events_in_flight
              << " events_redelivered=" << s.events_redelivered
              << " events_dropped=" << s.events_dropped
              << (s.draining_workers.empty() ? "" : " draining=" + join(s.draining_workers, ","));
    if (!s.bus.mode.empty()) {
      std::cout << " bus=" << s.bus.mode << " bus_connected=" << (s.bus.connected ? 1 : 0)
                << " bus_received=" << s.bus.received << " bus_applied=" << s.bus.applied
                << " bus_rejected=" << s.bus.rejected << " bus_dropped=" << s.bus.dropped
                << " bus_bindings=" << s.bus.bindings;
    }
    std::cout << "\n";
    clients += s.clients;
    in += s.messages_in;
    out += s.messages_out;
    workers.insert(s.workers.begin(), s.workers.end());
  }
  // Groups and uids may span gateways: count them cluster-wide, not as a sum.
  const auto groups = c.get_all_group_ids(timeout);
  const auto uids = c.get_all_uid_count(timeout);
  std::cout << "total gateways=" << r.value.size() << " clients=" << clients
            << " groups=" << groups.value.size() << " uids=" << uids.value
            << " workers=" << workers.size() << " messages_in=" << in << " messages_out=" << out
            << "\n";
  for (const auto& g : r.missing_gateways) {
    std::cout << "no answer: " << g << "\n";
  }
  std::cout.flush();
  return report_missing(r.missing_gateways, "no answer from gateway");
}

// Refreshes a cluster view like top: per gateway clients, workers, message rates and queue
// depths, then totals. Arguments: refresh interval in seconds (default 1), number of refreshes
// (default 0: until interrupted). Clears the screen only when stdout is a terminal.
int top(Client& c, const args_t& a, ms timeout) {
  double interval_s = 1.0;
  std::uint64_t count = 0;
  try {
    if (a.size() > 1) {
      interval_s = std::stod(a[1]);
    }
    if (a.size() > 2) {
      count = std::stoull(a[2]);
    }
  } catch (const std::exception&) {
    std::cerr << "gwxctl: top takes [INTERVAL_SECONDS [COUNT]]\n";
    return 2;
  }
  if (!(interval_s >= 0.1 && interval_s <= 3600)) {
    std::cerr << "gwxctl: top interval must be between 0.1 and 3600 seconds\n";
    return 2;
  }
  const bool tty = isatty(STDOUT_FILENO) != 0;
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> previous;
  auto last = std::chrono::steady_clock::now();
  int status = k_ok;
  for (std::uint64_t n = 0; count == 0 || n < count; ++n) {
    if (n > 0) {
      std::this_thread::sleep_for(std::chrono::duration<double>(interval_s));
    }
    const auto r = c.get_stats(timeout);
    const auto now = std::chrono::steady_clock::now();
    const double dt = std::chrono::duration<double>(now - last).count();
    last = now;
    if (tty) {
      std::cout << "\x1b[H\x1b[2J";
    }
    if (r.error) {
      std::cout << "gwxctl top: " << r.error.message() << "\n" << std::flush;
      status = k_failed;
      continue;
    }
    std::printf("%-22s %8s %7s %10s %10s %8s %8s %8s %s\n", "GATEWAY", "CLIENTS", "WORKERS", "IN/s",
                "OUT/s", "QUEUED", "INFLIGHT", "REDELIV", "DRAINING");
    std::uint64_t clients = 0, queued = 0, in_flight = 0;
    double in_rate = 0, out_rate = 0;
    for (const auto& s : r.value) {
      const auto prev = previous.find(s.gateway_id);
      const bool have = prev != previous.end() && n > 0 && dt > 0;
      const double in_s = have ? double(s.messages_in - prev->second.first) / dt : 0;
      const double out_s = have ? double(s.messages_out - prev->second.second) / dt : 0;
      previous[s.gateway_id] = {s.messages_in, s.messages_out};
      std::printf("%-22s %8llu %7zu %10.0f %10.0f %8llu %8llu %8llu %s\n",
                  s.internal_address.c_str(), static_cast<unsigned long long>(s.clients),
                  s.workers.size(), in_s, out_s, static_cast<unsigned long long>(s.events_queued),
                  static_cast<unsigned long long>(s.events_in_flight),
                  static_cast<unsigned long long>(s.events_redelivered),
                  join(s.draining_workers, ",").c_str());
      clients += s.clients;
      queued += s.events_queued;
      in_flight += s.events_in_flight;
      in_rate += in_s;
      out_rate += out_s;
    }
    std::printf("%-22s %8llu %7s %10.0f %10.0f %8llu %8llu\n", "total",
                static_cast<unsigned long long>(clients), "", in_rate, out_rate,
                static_cast<unsigned long long>(queued),
                static_cast<unsigned long long>(in_flight));
    for (const auto& g : r.missing_gateways) {
      std::printf("no answer: %s\n", g.c_str());
    }
    std::fflush(stdout);
  }
  return status;
}

// Asks every gateway to drain the workers named a[1]; ok when at least one had such a worker.
int drain(Client& c, const args_t& a, ms timeout) {
  const auto r = c.drain_worker(a[1], timeout);
  if (r.error) {
    std::cerr << "gwxctl: " << r.error.message() << "\n";
    return k_failed;
  }
  bool found = false;
  for (const auto& [gateway, has_it] : r.value) {
    std::cout << gateway << (has_it ? " found" : " not-found") << "\n";
    found = found || has_it;
  }
  for (const auto& gateway : r.missing_gateways) {
    std::cout << gateway << " no-answer\n";
  }
  std::cout.flush();
  if (!found) {
    std::cerr << "gwxctl: no gateway has a worker named '" << a[1] << "' linked\n";
  }
  return found ? k_ok : k_failed;
}

int workers(Client& c, const args_t&, ms timeout) {
  auto r = c.get_stats(timeout);
  if (r.error) {
    std::cerr << "gwxctl: " << r.error.message() << "\n";
    return k_failed;
  }
  // One line per worker and gateway it is linked to, by worker name, then a line per worker.
  struct row {
    std::string gateway;
    gwx::worker_link_stats link;
  };
  std::map<std::string, std::vector<row>> by_name;
  for (const auto& s : r.value) {
    for (const auto& w : s.worker_links) {
      by_name[w.name].push_back({s.internal_address, w});
    }
  }
  for (auto& [name, rows] : by_name) {
    std::sort(rows.begin(), rows.end(),
              [](const row& a, const row& b) { return a.gateway < b.gateway; });
    std::uint64_t clients = 0;
    std::uint64_t in_flight = 0;
    bool draining = false;
    for (const auto& x : rows) {
      std::cout << name << " " << x.link.address << " gateway=" << x.gateway
                << " clients=" << x.link.clients << " events_in_flight=" << x.link.events_in_flight
                << " state=" << (x.link.draining ? "draining" : "linked") << "\n";
      clients += x.link.clients;
      in_flight += x.link.events_in_flight;
      draining = draining || x.link.draining;
    }
    std::cout << "worker " << name << " gateways=" << rows.size() << " clients=" << clients
              << " events_in_flight=" << in_flight
              << " state=" << (draining ? "draining" : "linked") << "\n";
  }
  for (const auto& g : r.missing_gateways) {
    std::cout << "no answer: " << g << "\n";
  }
  std::cout.flush();
  return report_missing(r.missing_gateways, "no answer from gateway");
}

std::vector<verb> make_verbs() {
  std::vector<verb> v;
  const auto add = [&v](std::string name, std::string args, std::string help, std::size_t min,
                        decltype(verb::run) run) {
    v.push_back(verb{std::move(name), std::move(args), std::move(help), min, std::move(run)});
  };
  add("stats", "", "per gateway: clients, groups, uids, workers, messages; then a total line", 0,
      stats);
  add("workers", "",
      "one line per linked worker and gateway: name, address, gateway, clients, events in "
      "flight, state (linked/draining); then a line per worker with its totals",
      0, workers);
  add("top", "[SECONDS [COUNT]]",
      "refresh a per-gateway view (clients, workers, message rates, queue depths) every SECONDS "
      "(default 1), COUNT times (default: until interrupted)",
      0, top);
  add("drain", "WORKER_NAME",
      "make the worker(s) called WORKER_NAME drain and exit (per gateway: found/not-found)", 1,
      drain);
  add("send-to-client", "ID MSG", "push MSG (the rest of the line) to one client", 2,
      [](Client& c, const args_t& a, ms t) {
        c.send_to_client(a[1], join_from(a, 2));
        return flushed(c, t);
      });
  add("send-to-clients", "ID[,ID...] MSG", "push MSG to several clients", 2,
      [](Client& c, const args_t& a, ms t) {
        c.send_to_clients(split_commas(a[1]), join_from(a, 2));
        return flushed(c, t);
      });
  add("send-to-uid", "UID[,UID...] MSG", "push MSG to every client bound to the uid(s)", 2,
      [](Client& c, const args_t& a, ms t) {
        c.send_to_uid(split_commas(a[1]), join_from(a, 2));
        return flushed(c, t);
      });
  add("send-to-group", "G[,G...] MSG", "push MSG to every member of the group(s)", 2,
      [](Client& c, const args_t& a, ms t) {
        c.send_to_group(split_commas(a[1]), join_from(a, 2));
        return flushed(c, t);
      });
  add("send-to-all", "MSG", "push MSG to every client", 1, [](Client& c, const args_t& a, ms t) {
    c.send_to_all(join_from(a, 1));
    return flushed(c, t);
  });
  add("kick", "ID [MSG]", "send MSG (if given), then close the client", 1,
      [](Client& c, const args_t& a, ms t) {
        c.close_client(a[1], a.size() > 2 ? std::optional<message>(join_from(a, 2)) : std::nullopt);
        return flushed(c, t);
      });
  add("destroy", "ID", "close the client at once", 1, [](Client& c, const args_t& a, ms t) {
    c.destroy_client(a[1]);
    return flushed(c, t);
  });
  add("bind-uid", "ID UID", "bind the client to UID", 2, [](Client& c, const args_t& a, ms t) {
    c.bind_uid(a[1], a[2]);
    return flushed(c, t);
  });
  add("unbind-uid", "ID", "remove the client's uid binding", 1,
      [](Client& c, const args_t& a, ms t) {
        c.unbind_uid(a[1]);
        return flushed(c, t);
      });
  add("join-group", "ID G", "add the client to group G", 2, [](Client& c, const args_t& a, ms t) {
    c.join_group(a[1], a[2]);
    return flushed(c, t);
  });
  add("leave-group", "ID G", "remove the client from group G", 2,
      [](Client& c, const args_t& a, ms t) {
        c.leave_group(a[1], a[2]);
        return flushed(c, t);
      });
  add("ungroup", "G", "dissolve group G everywhere", 1, [](Client& c, const args_t& a, ms t) {
    c.ungroup(a[1]);
    return flushed(c, t);
  });
  add("set-session", "ID [K=V...]", "replace the client's session", 1,
      [](Client& c, const args_t& a, ms t) {
        c.set_session(a[1], parse_pairs(a, 2));
        return flushed(c, t);
      });
  add("update-session", "ID K=V...", "merge keys into the client's session", 2,
      [](Client& c, const args_t& a, ms t) {
        c.update_session(a[1], parse_pairs(a, 2));
        return flushed(c, t);
      });
  add("is-uid-online", "UID", "1 if any client is bound to UID, else 0", 1,
      [](Client& c, const args_t& a, ms t) {
        return answer(c.is_uid_online(a[1], t), [](bool on) { std::cout << (on ? 1 : 0) << "\n"; });
      });
  add("online", "ID", "1 if the client is connected, else 0", 1,
      [](Client& c, const args_t& a, ms t) {
        return answer(c.is_online(a[1], t), [](bool on) { std::cout << (on ? 1 : 0) << "\n"; });
      });
  add("count", "", "clients connected to the cluster", 0, [](Client& c, const args_t&, ms t) {
    return answer(c.get_all_client_count(t), [](std::uint64_t n) { std::cout << n << "\n"; });
  });
  add("group-count", "G", "members of group G", 1, [](Client& c, const args_t& a, ms t) {
    return answer(c.get_client_count_by_group(a[1], t),
                  [](std::uint64_t n) { std::cout << n << "\n"; });
  });
  add("group-clients", "G", "members of group G, one per line", 1,
      [](Client& c, const args_t& a, ms t) {
        return answer(c.get_client_ids_by_group(a[1], t), print_lines);
      });
  add("group-uids", "G", "distinct uids in group G, one per line", 1,
      [](Client& c, const args_t& a, ms t) {
        return answer(c.get_uids_by_group(a[1], t), print_lines);
      });
  add("uid-clients", "UID", "clients bound to UID, one per line", 1,
      [](Client& c, const args_t& a, ms t) {
        return answer(c.get_client_ids_by_uid(a[1], t), print_lines);
      });
  add("uid-of", "ID", "the uid the client is bound to (empty line: none)", 1,
      [](Client& c, const args_t& a, ms t) {
        return answer(c.get_uid_by_client_id(a[1], t),
                      [](const std::string& uid) { std::cout << uid << "\n"; });
      });
  add("groups", "[ID]", "every group, or the client's groups, one per line", 0,
      [](Client& c, const args_t& a, ms t) {
        return answer(a.size() > 1 ? c.get_groups_of_client(a[1], t) : c.get_all_group_ids(t),
                      print_lines);
      });
  add("clients", "", "every connected client, one per line", 0,
      [](Client& c, const args_t&, ms t) { return answer(c.get_all_client_ids(t), print_lines); });
  add("uids", "", "every bound uid, one per line", 0,
      [](Client& c, const args_t&, ms t) { return answer(c.get_all_uids(t), print_lines); });
  add("session", "ID", "the client's session as K=V lines (exit 1 when offline)", 1,
      [](Client& c, const args_t& a, ms t) {
        const auto r = c.get_session(a[1], t);
        const int rc = answer(r, [](const std::optional<session_map>& s) {
          for (const auto& [k, v] : s.value_or(session_map{})) {
            std::cout << k << "=" << v << "\n";
          }
        });
        return rc == k_ok && !r.value ? k_failed : rc;
      });
  return v;
}

}  // namespace

const std::vector<verb>& verbs() {
  static const std::vector<verb> all = make_verbs();
  return all;
}

const verb* find_verb(std::string_view name) {
  const auto& all = verbs();
  const auto it =
      std::find_if(all.begin(), all.end(), [&](const verb& v) { return v.name == name; });
  return it == all.end() ? nullptr : &*it;
}

std::string verbs_help() {
  std::string out =
      "  gateways                       the gateways the registers list: id, "
      "internal address, listeners\n";
  for (const auto& v : verbs()) {
    std::string head = "  " + v.name + (v.args.empty() ? "" : " " + v.args);
    head.resize(std::max<std::size_t>(head.size() + 1, 33), ' ');
    out += head + v.help + "\n";
  }
  return out;
}

}  // namespace gwx::ctl

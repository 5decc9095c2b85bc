#include "common/registry/grpc_tls_provider.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "common/net/tls_context.hpp"
#include "common/tls_options.hpp"

namespace gwx::registry {
namespace {

std::string proc_path(int fd) {
  return "/proc/self/fd/" + std::to_string(fd);
}

void close_fd(int& fd) {
  if (fd >= 0) {
    ::close(fd);
    fd = -1;
  }
}

// A new in-memory file holding `data`. Throws std::runtime_error.
int memory_file(const char* name, const std::string& data) {
  const int fd = ::memfd_create(name, MFD_CLOEXEC);
  if (fd < 0) {
    throw std::runtime_error(std::string("cannot create an in-memory file: ") +
                             std::strerror(errno));
  }
  std::size_t done = 0;
  while (done < data.size()) {
    const auto n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      const int error = errno;
      ::close(fd);
      throw std::runtime_error(std::string("cannot write an in-memory file: ") +
                               std::strerror(error));
    }
    done += static_cast<std::size_t>(n);
  }
  return fd;
}

void set_mtime(int fd, std::time_t stamp) {
  const timespec times[2] = {{stamp, 0}, {stamp, 0}};
  ::futimens(fd, times);
}

// Puts `fresh` at descriptor `live` in one step (readers of /proc/self/fd/<live> see the old
// file or the new one, never neither) and closes `fresh`.
void replace_fd(int& fresh, int live) {
  if (fresh < 0) {
    return;
  }
  ::dup3(fresh, live, O_CLOEXEC);
  close_fd(fresh);
}

// Loads `files` the way gwx's own TLS contexts do. Throws net::tls_config_error (one line).
void check_files(const tls_files& files, grpc_tls_provider::role end) {
  if (end == grpc_tls_provider::role::server) {
    make_tls_server(files);
  } else {
    make_tls_client(files);
  }
}

}  // namespace

grpc_tls_provider::grpc_tls_provider(const tls_files& files, role end, std::string what)
    : files_(files), role_(end), what_(std::move(what)) {
  live_ = load();
  stamp_ = std::time(nullptr);
  if (has_identity()) {
    set_mtime(live_.identity, stamp_);
    const auto identity = proc_path(live_.identity);
    provider_ = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        identity, identity, has_roots() ? proc_path(live_.roots) : std::string(), k_refresh_s);
  } else {
    provider_ = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        proc_path(live_.roots), k_refresh_s);
  }
}

grpc_tls_provider::~grpc_tls_provider() {
  // gRPC's watcher thread reads the descriptors until the last server or channel using the
  // provider is gone: owners destroy those first (see register_server).
  provider_.reset();
  close_fd(live_.identity);
  close_fd(live_.roots);
}

grpc_tls_provider::copies grpc_tls_provider::load() const {
  try {
    check_files(files_, role_);
  } catch (const net::tls_config_error& e) {
    throw net::tls_config_error(what_ + ": " + e.what());
  }
  copies fresh;
  const auto discard = [&fresh] {
    close_fd(fresh.identity);
    close_fd(fresh.roots);
  };
  try {
    if (has_identity()) {
      // One file for both, so that the watcher reads them together; gRPC picks the key and the
      // certificates out of it by their PEM labels.
      auto identity = net::read_pem_file(files_.cert, "certificate");
      if (!identity.empty() && identity.back() != '\n') {
        identity.push_back('\n');
      }
      identity += net::read_pem_file(files_.key, "private key");
      fresh.identity = memory_file("gwx-tls-identity", identity);
    }
    if (has_roots()) {
      fresh.roots = memory_file("gwx-tls-roots", net::read_pem_file(files_.ca, "CA"));
    }
  } catch (const net::tls_config_error& e) {
    discard();
    throw net::tls_config_error(what_ + ": " + e.what());
  } catch (...) {
    discard();
    throw;
  }
  // What gRPC will read is what was checked, even if a file changed in between.
  try {
    const auto identity = has_identity() ? proc_path(fresh.identity) : std::string();
    check_files({identity, identity, has_roots() ? proc_path(fresh.roots) : std::string()}, role_);
  } catch (const net::tls_config_error&) {
    discard();
    throw net::tls_config_error(what_ + ": " + describe() +
                                " changed while being read; reload again");
  }
  return fresh;
}

std::optional<std::string> grpc_tls_provider::reload() {
  const std::lock_guard lock(mutex_);
  copies fresh;
  try {
    fresh = load();
  } catch (const std::exception& e) {
    return std::string(e.what());
  }
  // A modification time the watcher has not seen on this file yet: it re-reads the key and
  // the certificate when the time moved while it read them.
  stamp_ = std::max(std::time(nullptr), stamp_ + 1);
  if (fresh.identity >= 0) {
    set_mtime(fresh.identity, stamp_);
  }
  replace_fd(fresh.identity, live_.identity);
  replace_fd(fresh.roots, live_.roots);
  return std::nullopt;
}

std::string grpc_tls_provider::describe() const {
  std::string out;
  for (const auto* f : {&files_.cert, &files_.key, &files_.ca}) {
    if (!f->empty()) {
      out += out.empty() ? *f : ", " + *f;
    }
  }
  return out;
}

}  // namespace gwx::registry

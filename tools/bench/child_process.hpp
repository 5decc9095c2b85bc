#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace gwx::bench {

/// A process this benchmark started: stdin and stdout are pipes, stderr goes to a file. It gets
/// SIGKILL if the benchmark dies first (PR_SET_PDEATHSIG), and its soft limit of open files is
/// raised to the hard limit. Not thread-safe.
class child_process {
 public:
  /// Starts `argv` (argv[0] is a path). Throws std::runtime_error if it cannot be started.
  child_process(std::string name, const std::vector<std::string>& argv,
                const std::string& stderr_path);
  ~child_process();
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  const std::string& name() const { return name_; }
  pid_t pid() const { return pid_; }
  const std::string& stderr_path() const { return stderr_path_; }

  /// The next line of its stdout, or nullopt at end of file or when `timeout` passed.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout);

  /// Reads lines until one starts with `prefix`; returns it (without the prefix). Throws
  /// std::runtime_error naming the process, what it printed and the tail of its stderr when it
  /// exits or stays silent for `timeout`.
  std::string wait_for(const std::string& prefix, std::chrono::milliseconds timeout);

  /// Closes its stdin (a holder process exits on it).
  void close_stdin();

  /// SIGTERM, then SIGKILL after `grace`; reaps it. Returns the exit status (-signal if killed).
  int stop(std::chrono::milliseconds grace = std::chrono::milliseconds(5000));

  /// The last lines of its stderr file.
  std::string stderr_tail(std::size_t lines = 5) const;

 private:
  std::string name_;
  std::string stderr_path_;
  pid_t pid_ = -1;
  int in_fd_ = -1;
  int out_fd_ = -1;
  std::string buffered_;
  bool eof_ = false;
  std::optional<int> status_;
};

}  // namespace gwx::bench

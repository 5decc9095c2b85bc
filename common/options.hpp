#pragma once

#include <boost/program_options.hpp>
#include <functional>
#include <istream>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace gwx {

namespace po = boost::program_options;

/// One `name = value` line of a config file.
struct config_entry {
  std::string name;
  std::string value;
  int line = 0;
};

/// Splits a config file into entries: one `name = value` per line, blank lines and lines whose
/// first non-blank character is `#` ignored. Only whole lines are comments, so a `#` inside a
/// value (a secret, a URL) is kept. Names and values are trimmed; a name may repeat (the caller
/// decides whether the option takes several values). Throws std::runtime_error
/// "<path>:<line>: <reason>" on a line that is not `name = value`.
std::vector<config_entry> read_config_entries(std::istream& in, const std::string& path);

/// Command-line, config-file and environment options of one binary, all with the same names:
/// `--foo-bar X` on the command line, `foo-bar = X` in the file named by `--config` (or
/// GWX_CONFIG), and `GWX_FOO_BAR=X` in the environment. Precedence: flag > env > file > default;
/// a multi-value option takes all its values from the one source that wins. Adds --help,
/// --print-config, --config, --log-level and --log-format to every binary. Not thread-safe; used
/// once at start-up.
class option_parser {
 public:
  /// Every source read, before any side effect.
  struct result {
    po::variables_map values;
    /// Option name → "flag", "env GWX_NAME", "file PATH"; options absent here are at their
    /// default (or unset).
    std::map<std::string, std::string> sources;
    bool help = false;
    bool print_config = false;
  };

  /// `usage` is the one-line synopsis printed first by --help; `about` follows it.
  option_parser(std::string program, std::string usage, std::string about);

  /// Where the binary adds its own options.
  po::options_description& options() { return options_; }

  /// Parses argv, env and file. On --help prints the help text and exits 0; on --print-config
  /// prints effective_config() and exits 0; on a bad or unknown option, a bad config file or a
  /// missing required option prints one line "<program>: <reason>" and exits 2. Also
  /// initialises logging.
  po::variables_map parse(int argc, char** argv);

  /// The parsing behind parse(), without printing, exiting or checking required options.
  /// `environment` holds "NAME=VALUE" strings (as in `environ`). With --help the environment and
  /// the config file are not read. Throws std::exception with a one-line message naming the
  /// option and where it came from.
  result read_sources(int argc, const char* const* argv,
                      const std::vector<std::string>& environment) const;

  /// The --print-config text: one line per value, `name = value   # source` with the source
  /// `default`, `file PATH`, `env GWX_NAME` or `flag`; a multi-value option repeats its line. The
  /// value of an option whose name contains "secret" or "token" is shown only as `<set>` or
  /// `<unset>`; an option with no value at all reads `<unset>`.
  std::string effective_config(const result& parsed) const;

  /// A check that --print-config runs before printing (a normal start runs the binary's own
  /// checks after parse()): it throws std::exception with a one-line reason for a value that
  /// would not start, and --print-config then prints that line and exits 2.
  void add_print_check(std::function<void(const po::variables_map&)> check);

  /// For positional words after the options (gwxctl's VERB ARGS…).
  void allow_positional(const std::string& name);

  const std::string& program() const { return program_; }

 private:
  std::string program_;
  std::string usage_;
  std::string about_;
  po::options_description options_;
  std::string positional_;
  std::vector<std::function<void(const po::variables_map&)>> print_checks_;
};

/// Whether the option `name` holds a secret (its name contains "secret" or "token"): never
/// printed or echoed in an error message.
bool is_secret_option(const std::string& name);

/// `text` with the password of any "scheme://user:password@" in it replaced by "***" (what
/// --print-config shows of a --bus URL).
std::string redact_url_password(std::string_view text);

/// The value of the "on|off" option `name`: true for on. Throws std::invalid_argument
/// "--NAME must be on or off" for any other value.
bool on_off(const po::variables_map& vm, const std::string& name);

/// Prints "<program>: <message>" to stderr and exits with `code`. For start-up errors.
[[noreturn]] void die(const std::string& program, const std::string& message, int code = 1);

}  // namespace gwx

#pragma once

#include <boost/program_options.hpp>
#include <string>

namespace gwx {

namespace po = boost::program_options;

/// Command-line, config-file and environment options of one binary, all with the same names:
/// `--foo-bar X` on the command line, `foo-bar = X` in the file named by `--config` (or
/// GWX_CONFIG), and `GWX_FOO_BAR=X` in the environment. Precedence: flag > env > file > default.
/// Adds --help, --config, --log-level and --log-format to every binary.
class option_parser {
 public:
  /// `usage` is the one-line synopsis printed first by --help; `about` follows it.
  option_parser(std::string program, std::string usage, std::string about);

  /// Where the binary adds its own options.
  po::options_description& options() { return options_; }

  /// Parses argv, env and file. On --help prints the help text and exits 0; on a bad or unknown
  /// option prints one line "<program>: <reason>" and exits 2. Also initialises logging.
  po::variables_map parse(int argc, char** argv);

  /// For positional words after the options (gwxctl's VERB ARGS…).
  void allow_positional(const std::string& name);

  const std::string& program() const { return program_; }

 private:
  std::string program_;
  std::string usage_;
  std::string about_;
  po::options_description options_;
  std::string positional_;
};

/// Prints "<program>: <message>" to stderr and exits with `code`. For start-up errors.
[[noreturn]] void die(const std::string& program, const std::string& message, int code = 1);

}  // namespace gwx

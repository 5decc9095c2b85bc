#include "common/options.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

namespace gwx {
namespace {

namespace fs = std::filesystem;

/// A parser shaped like the gateway's: a scalar, a multi-value option with a default, numbers,
/// secrets, and a required option.
option_parser make_parser() {
  option_parser p("gwx-test", "gwx-test [options]", "A test binary.");
  // clang-format off
  p.options().add_options()
      ("internal", po::value<std::string>()->default_value("127.0.0.1:7800"), "internal address")
      ("listen", po::value<std::vector<std::string>>()
                     ->default_value({"ws://127.0.0.1:8080/"}, "ws://127.0.0.1:8080/"),
       "listener URL; repeat for several")
      ("threads", po::value<std::size_t>()->default_value(4), "event loops")
      ("secret", po::value<std::string>()->default_value(""), "link secret")
      ("token", po::value<std::string>(), "register token")
      ("max-message", po::value<unsigned>()->default_value(1024), "largest message");
  // clang-format on
  return p;
}

/// A config file in a fresh temporary directory, removed with the object.
class temp_config {
 public:
  explicit temp_config(const std::string& text) {
    auto tmpl = (fs::temp_directory_path() / "gwx-options-XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
    path_ = (fs::path(dir_) / "test.conf").string();
    std::ofstream(path_) << text;
  }
  ~temp_config() { fs::remove_all(dir_); }
  temp_config(const temp_config&) = delete;
  temp_config& operator=(const temp_config&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string dir_;
  std::string path_;
};

option_parser::result read(const option_parser& p, std::vector<std::string> args,
                           const std::vector<std::string>& env = {}) {
  args.insert(args.begin(), "gwx-test");
  std::vector<const char*> argv;
  argv.reserve(args.size() + 1);
  for (const auto& a : args) {
    argv.push_back(a.c_str());
  }
  argv.push_back(nullptr);
  return p.read_sources(static_cast<int>(args.size()), argv.data(), env);
}

/// The --print-config lines of `name` as {value, source} pairs, in order.
std::vector<std::pair<std::string, std::string>> printed(const option_parser& p,
                                                         const option_parser::result& r,
                                                         const std::string& name) {
  std::vector<std::pair<std::string, std::string>> out;
  std::istringstream in(p.effective_config(r));
  for (std::string line; std::getline(in, line);) {
    const auto prefix = name + " = ";
    if (!line.starts_with(prefix)) {
      continue;
    }
    const auto hash = line.rfind("   # ");
    auto value = line.substr(prefix.size(), hash - prefix.size());
    value.erase(value.find_last_not_of(' ') + 1);
    out.emplace_back(value, line.substr(hash + 5));
  }
  return out;
}

using pairs = std::vector<std::pair<std::string, std::string>>;

std::string what_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no exception)";
}

/// The one-line message read_sources throws for these arguments.
std::string error_of(const option_parser& p, const std::vector<std::string>& args,
                     const std::vector<std::string>& env = {}) {
  return what_of([&] { read(p, args, env); });
}

TEST(OptionParser, ScalarPrecedenceFlagOverEnvOverFileOverDefault) {
  const auto p = make_parser();
  const temp_config file("internal = 10.0.0.1:7800\n");
  const std::string cfg = "--config=" + file.path();
  const std::string env = "GWX_INTERNAL=10.0.0.2:7800";

  auto r = read(p, {});
  EXPECT_EQ(r.values["internal"].as<std::string>(), "127.0.0.1:7800");
  EXPECT_EQ(printed(p, r, "internal"), (pairs{{"127.0.0.1:7800", "default"}}));

  r = read(p, {cfg});
  EXPECT_EQ(r.values["internal"].as<std::string>(), "10.0.0.1:7800");
  EXPECT_EQ(printed(p, r, "internal"), (pairs{{"10.0.0.1:7800", "file " + file.path()}}));

  r = read(p, {cfg}, {env});
  EXPECT_EQ(r.values["internal"].as<std::string>(), "10.0.0.2:7800");
  EXPECT_EQ(printed(p, r, "internal"), (pairs{{"10.0.0.2:7800", "env GWX_INTERNAL"}}));

  r = read(p, {cfg, "--internal", "10.0.0.3:7800"}, {env});
  EXPECT_EQ(r.values["internal"].as<std::string>(), "10.0.0.3:7800");
  EXPECT_EQ(printed(p, r, "internal"), (pairs{{"10.0.0.3:7800", "flag"}}));

  // A flag beats the environment even without a file; the environment beats the default.
  r = read(p, {"--internal=10.0.0.4:1"}, {env});
  EXPECT_EQ(printed(p, r, "internal"), (pairs{{"10.0.0.4:1", "flag"}}));
  r = read(p, {}, {env});
  EXPECT_EQ(printed(p, r, "internal"), (pairs{{"10.0.0.2:7800", "env GWX_INTERNAL"}}));
}

TEST(OptionParser, MultiValueTakesEveryValueFromTheWinningSourceOnly) {
  const auto p = make_parser();
  const temp_config file("listen = ws://0.0.0.0:1/\nlisten = tcp+line://0.0.0.0:2\n");
  const std::string cfg = "--config=" + file.path();
  const std::string env = "GWX_LISTEN=ws://0.0.0.0:3/";
  using list = std::vector<std::string>;

  auto r = read(p, {});
  EXPECT_EQ(r.values["listen"].as<list>(), list{"ws://127.0.0.1:8080/"});
  EXPECT_EQ(printed(p, r, "listen"), (pairs{{"ws://127.0.0.1:8080/", "default"}}));

  r = read(p, {cfg});
  EXPECT_EQ(r.values["listen"].as<list>(), (list{"ws://0.0.0.0:1/", "tcp+line://0.0.0.0:2"}));
  const auto from_file = "file " + file.path();
  EXPECT_EQ(printed(p, r, "listen"),
            (pairs{{"ws://0.0.0.0:1/", from_file}, {"tcp+line://0.0.0.0:2", from_file}}));

  r = read(p, {cfg}, {env});
  EXPECT_EQ(r.values["listen"].as<list>(), list{"ws://0.0.0.0:3/"});
  EXPECT_EQ(printed(p, r, "listen"), (pairs{{"ws://0.0.0.0:3/", "env GWX_LISTEN"}}));

  r = read(p, {cfg, "--listen", "ws://0.0.0.0:4/", "--listen", "tcp+raw://0.0.0.0:5"}, {env});
  EXPECT_EQ(r.values["listen"].as<list>(), (list{"ws://0.0.0.0:4/", "tcp+raw://0.0.0.0:5"}));
  EXPECT_EQ(printed(p, r, "listen"),
            (pairs{{"ws://0.0.0.0:4/", "flag"}, {"tcp+raw://0.0.0.0:5", "flag"}}));
}

TEST(OptionParser, ConfigFileNamedByGwxConfigAndFlagBeatsIt) {
  const auto p = make_parser();
  const temp_config a("threads = 7\n");
  const temp_config b("threads = 9\n");
  auto r = read(p, {}, {"GWX_CONFIG=" + a.path()});
  EXPECT_EQ(r.values["threads"].as<std::size_t>(), 7U);
  EXPECT_EQ(printed(p, r, "threads"), (pairs{{"7", "file " + a.path()}}));
  EXPECT_EQ(printed(p, r, "config"), (pairs{{a.path(), "env GWX_CONFIG"}}));

  r = read(p, {"--config", b.path()}, {"GWX_CONFIG=" + a.path()});
  EXPECT_EQ(r.values["threads"].as<std::size_t>(), 9U);
  EXPECT_EQ(printed(p, r, "config"), (pairs{{b.path(), "flag"}}));
}

TEST(OptionParser, EveryOptionIsPrintedOnceWithItsSourceAndUnsetOnesSaySo) {
  const auto p = make_parser();
  const auto r = read(p, {"--threads", "2"});
  const auto text = p.effective_config(r);
  for (const auto* name : {"config", "log-level", "log-format", "internal", "listen", "threads",
                           "secret", "token", "max-message"}) {
    EXPECT_EQ(printed(p, r, name).size(), 1U) << name << " in:\n" << text;
  }
  EXPECT_EQ(printed(p, r, "config"), (pairs{{"<unset>", "default"}}));
  EXPECT_EQ(printed(p, r, "threads"), (pairs{{"2", "flag"}}));
  EXPECT_EQ(printed(p, r, "log-level"), (pairs{{"info", "default"}}));
  EXPECT_EQ(text.find("help"), std::string::npos) << text;
  EXPECT_EQ(text.find("print-config"), std::string::npos) << text;
}

TEST(OptionParser, SecretsAreNeverPrinted) {
  const auto p = make_parser();
  const temp_config file("secret = file-secret-value\n");
  auto r = read(p, {"--config", file.path(), "--token", "flag-token-value"},
                {"GWX_SECRET=env-secret-value"});
  EXPECT_EQ(r.values["secret"].as<std::string>(), "env-secret-value");
  EXPECT_EQ(r.values["token"].as<std::string>(), "flag-token-value");
  auto text = p.effective_config(r);
  EXPECT_EQ(printed(p, r, "secret"), (pairs{{"<set>", "env GWX_SECRET"}}));
  EXPECT_EQ(printed(p, r, "token"), (pairs{{"<set>", "flag"}}));
  for (const auto* leaked : {"file-secret-value", "env-secret-value", "flag-token-value"}) {
    EXPECT_EQ(text.find(leaked), std::string::npos) << text;
  }

  // Unset: no value at all, or the empty default.
  r = read(p, {});
  EXPECT_EQ(printed(p, r, "secret"), (pairs{{"<unset>", "default"}}));
  EXPECT_EQ(printed(p, r, "token"), (pairs{{"<unset>", "default"}}));
  r = read(p, {"--secret", ""});
  EXPECT_EQ(printed(p, r, "secret"), (pairs{{"<unset>", "flag"}}));
  EXPECT_TRUE(is_secret_option("register-token"));
  EXPECT_TRUE(is_secret_option("secret"));
  EXPECT_FALSE(is_secret_option("threads"));
}

TEST(OptionParser, SecretValuesStayOutOfErrorMessages) {
  option_parser p("gwx-test", "u", "a");
  p.options().add_options()("token-count", po::value<unsigned>(), "a number named like a secret");
  const auto msg = error_of(p, {}, {"GWX_TOKEN_COUNT=hunter2"});
  EXPECT_NE(msg.find("token-count"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("hunter2"), std::string::npos) << msg;
}

TEST(OptionParser, UnknownKeyInConfigFileNamesFileLineAndKey) {
  const auto p = make_parser();
  const temp_config file("# comment\n\nthreads = 2\nno-such-key = 1\n");
  const auto msg = error_of(p, {"--config", file.path()});
  EXPECT_EQ(msg, file.path() + ":4: unknown option 'no-such-key'");
  // Command-line-only options are not config keys either.
  const temp_config help("help = 1\n");
  EXPECT_EQ(error_of(p, {"--config", help.path()}), help.path() + ":1: unknown option 'help'");
  const temp_config nested("config = /etc/other.conf\n");
  EXPECT_NE(error_of(p, {"--config", nested.path()}).find(":1: 'config' cannot"),
            std::string::npos);
}

TEST(OptionParser, MalformedValuesNameTheOptionAndTheirSource) {
  const auto p = make_parser();
  const temp_config bad("internal = x\nthreads = many\n");
  EXPECT_EQ(error_of(p, {"--config", bad.path()}),
            bad.path() + ":2: invalid value 'many' for option 'threads'");
  EXPECT_EQ(error_of(p, {}, {"GWX_THREADS=lots"}),
            "GWX_THREADS: invalid value 'lots' for option 'threads'");
  EXPECT_EQ(error_of(p, {"--threads", "x1"}), "--threads: invalid value 'x1'");
  // A negative number for an unsigned option is rejected, not wrapped around.
  EXPECT_NE(error_of(p, {"--max-message", "-1"}).find("--max-message: invalid"), std::string::npos);
  EXPECT_NE(error_of(p, {}, {"GWX_THREADS=-2"}).find("must not be negative"), std::string::npos);
}

TEST(OptionParser, ScalarSetTwiceInOneSourceIsAnError) {
  const auto p = make_parser();
  const temp_config file("threads = 2\nlisten = ws://a:1/\nthreads = 3\nlisten = ws://b:1/\n");
  EXPECT_EQ(error_of(p, {"--config", file.path()}),
            file.path() + ":3: option 'threads' is already set on line 1");
  EXPECT_EQ(error_of(p, {"--threads", "1", "--threads", "2"}), "--threads given more than once");
}

TEST(OptionParser, BadConfigFiles) {
  const auto p = make_parser();
  EXPECT_EQ(error_of(p, {"--config", "/nonexistent/gwx.conf"}),
            "cannot read config file '/nonexistent/gwx.conf'");
  const temp_config no_eq("threads 2\n");
  EXPECT_EQ(error_of(p, {"--config", no_eq.path()}), no_eq.path() + ":1: expected 'name = value'");
  const temp_config section("[gateway]\nthreads = 2\n");
  EXPECT_NE(error_of(p, {"--config", section.path()}).find(":1: sections"), std::string::npos);
  // --help never reads the file, so a broken file cannot hide the help text.
  EXPECT_TRUE(read(p, {"--help", "--config", "/nonexistent/gwx.conf"}).help);
}

TEST(OptionParser, UnknownFlagIsAnErrorButUnknownGwxEnvIsIgnored) {
  const auto p = make_parser();
  EXPECT_NE(error_of(p, {"--no-such-flag"}).find("no-such-flag"), std::string::npos);
  const auto r = read(p, {}, {"GWX_BIN=/tmp", "GWX_HELP=1", "GWX_PRINT_CONFIG=1", "PATH=/bin"});
  EXPECT_FALSE(r.help);
  EXPECT_FALSE(r.print_config);
}

TEST(OptionParser, PositionalWordsAreNeitherConfigKeysNorPrinted) {
  auto p = make_parser();
  p.options().add_options()("command", po::value<std::vector<std::string>>(), "verb");
  p.allow_positional("command");
  const auto r = read(p, {"stats", "--threads", "1", "extra"});
  EXPECT_EQ(r.values["command"].as<std::vector<std::string>>(),
            (std::vector<std::string>{"stats", "extra"}));
  EXPECT_EQ(p.effective_config(r).find("command"), std::string::npos);
  const temp_config file("command = stats\n");
  EXPECT_EQ(error_of(p, {"--config", file.path()}), file.path() + ":1: unknown option 'command'");
}

TEST(OnOff, OnAndOffOnlyAndTheErrorNamesTheOption) {
  option_parser p("gwx-test", "gwx-test [options]", "A test binary.");
  p.options().add_options()("io-uring", po::value<std::string>()->default_value("on"), "on|off");
  const auto read = [&](std::vector<const char*> args) {
    args.insert(args.begin(), "gwx-test");
    return p.read_sources(static_cast<int>(args.size()), args.data(), {}).values;
  };
  EXPECT_TRUE(on_off(read({}), "io-uring"));
  EXPECT_FALSE(on_off(read({"--io-uring", "off"}), "io-uring"));
  for (const char* bad : {"yes", "On", "", "off "}) {
    try {
      on_off(read({"--io-uring", bad}), "io-uring");
      ADD_FAILURE() << "'" << bad << "' accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_STREQ(e.what(), "--io-uring must be on or off");
    }
  }
}

TEST(ConfigEntries, WholeLineCommentsTrimmingAndHashInValues) {
  std::istringstream in(
      "  # a comment\r\n"
      "\n"
      "secret = s3#cret  \r\n"
      "listen=ws://h:1/#frag\n"
      "  heartbeat-data =   \n");
  const auto entries = read_config_entries(in, "x.conf");
  ASSERT_EQ(entries.size(), 3U);
  EXPECT_EQ(entries[0].name, "secret");
  EXPECT_EQ(entries[0].value, "s3#cret");
  EXPECT_EQ(entries[0].line, 3);
  EXPECT_EQ(entries[1].name, "listen");
  EXPECT_EQ(entries[1].value, "ws://h:1/#frag");
  EXPECT_EQ(entries[2].name, "heartbeat-data");
  EXPECT_EQ(entries[2].value, "");
  std::istringstream bad(" = 3\n");
  EXPECT_EQ(what_of([&] { read_config_entries(bad, "x.conf"); }),
            "x.conf:1: expected 'name = value'");
}

// The exit paths of parse(): the process ends, so these run in death-test children.
int parse_in_child(std::vector<std::string> args) {
  auto p = make_parser();
  p.options().add_options()("app", po::value<std::string>()->required(), "required");
  args.insert(args.begin(), "gwx-test");
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  p.parse(static_cast<int>(args.size()), argv.data());
  return 0;
}

TEST(OptionParserDeathTest, ExitPaths) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(parse_in_child({"--no-such-flag"}), testing::ExitedWithCode(2),
              "^gwx-test: unrecognised option '--no-such-flag' \\(see --help\\)\n$");
  EXPECT_EXIT(parse_in_child({"--help"}), testing::ExitedWithCode(0), "");
  // --print-config shows a missing required option instead of failing on it.
  EXPECT_EXIT(parse_in_child({"--print-config"}), testing::ExitedWithCode(0), "");
  EXPECT_EXIT(parse_in_child({}), testing::ExitedWithCode(2),
              "^gwx-test: .*'--app' is required.*\n$");
  EXPECT_EXIT(parse_in_child({"--app", "x", "--log-level", "loud", "--print-config"}),
              testing::ExitedWithCode(2), "^gwx-test: unknown log level 'loud'");
  EXPECT_EXIT(
      {
        setenv("GWX_CONFIG", "/nonexistent/gwx.conf", 1);
        parse_in_child({"--app", "x"});
      },
      testing::ExitedWithCode(2), "^gwx-test: cannot read config file '/nonexistent/gwx.conf'");
  const temp_config unknown("app = echo\nthreds = 3\n");
  EXPECT_EXIT(parse_in_child({"--config", unknown.path()}), testing::ExitedWithCode(2),
              "^gwx-test: .*test.conf:2: unknown option 'threds' \\(see --help\\)\n$");
}

}  // namespace
}  // namespace gwx

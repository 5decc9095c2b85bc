#include "common/options.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <typeinfo>

#include "common/logging.hpp"

namespace gwx {
namespace {

constexpr std::string_view k_env_prefix = "GWX_";
constexpr const char* k_flag_source = "flag";

std::string trim(std::string_view s) {
  const auto blank = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!s.empty() && blank(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && blank(s.back())) {
    s.remove_suffix(1);
  }
  return std::string(s);
}

/// Joins `parts` into one string (one allocation; messages are built inside loops).
std::string cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (const auto part : parts) {
    out += part;
  }
  return out;
}

/// Options that only make sense on the command line.
bool command_line_only(const std::string& name) {
  return name == "help" || name == "print-config";
}

bool holds_unsigned(const boost::any& value) {
  const auto& t = value.type();
  return t == typeid(unsigned) || t == typeid(unsigned long) || t == typeid(unsigned long long) ||
         t == typeid(unsigned short) || t == typeid(std::vector<unsigned>) ||
         t == typeid(std::vector<unsigned long>) || t == typeid(std::vector<unsigned long long>);
}

/// Converts `tokens` for option `d` into `scratch` the way po::store will, so a bad value is
/// reported with its source before anything is stored. `scratch` accumulates one source's
/// values: a scalar given twice in one source throws po::multiple_occurrences.
void check_value(const po::option_description& d, const std::vector<std::string>& tokens,
                 boost::any& scratch, const std::string& where, const std::string& suffix) {
  const auto& name = d.long_name();
  const auto shown = [&](const std::string& token) {
    return is_secret_option(name) ? std::string("value") : "value '" + token + "'";
  };
  try {
    d.semantic()->parse(scratch, tokens, true);
  } catch (const po::multiple_occurrences&) {
    throw;
  } catch (const std::exception&) {
    throw std::runtime_error(where + ": invalid " + shown(tokens.empty() ? "" : tokens.back()) +
                             suffix);
  }
  // lexical_cast wraps "-1" into a huge unsigned number; an operator never means that.
  if (holds_unsigned(scratch)) {
    for (const auto& token : tokens) {
      if (trim(token).starts_with('-')) {
        throw std::runtime_error(
            cat({where, ": invalid ", shown(token), suffix, " (must not be negative)"}));
      }
    }
  }
}

template <class T>
std::string to_text(const T& v) {
  if constexpr (std::is_same_v<T, std::string>) {
    return v;
  } else if constexpr (std::is_same_v<T, bool>) {
    return v ? "true" : "false";
  } else {
    std::ostringstream out;
    out << v;
    return out.str();
  }
}

/// Appends the text of `value` if it holds a T or a std::vector<T>.
template <class T>
bool append_texts(const boost::any& value, std::vector<std::string>& out) {
  if (const auto* one = boost::any_cast<T>(&value)) {
    out.push_back(to_text(*one));
    return true;
  }
  if (const auto* many = boost::any_cast<std::vector<T>>(&value)) {
    for (const auto& v : *many) {
      out.push_back(to_text(v));
    }
    return true;
  }
  return false;
}

/// The printable values of an option, one per occurrence; empty for none.
std::vector<std::string> value_texts(const boost::any& value) {
  std::vector<std::string> out;
  if (value.empty()) {
    return out;
  }
  const bool known = append_texts<std::string>(value, out) || append_texts<bool>(value, out) ||
                     append_texts<int>(value, out) || append_texts<unsigned>(value, out) ||
                     append_texts<long>(value, out) || append_texts<unsigned long>(value, out) ||
                     append_texts<long long>(value, out) ||
                     append_texts<unsigned long long>(value, out) ||
                     append_texts<short>(value, out) || append_texts<unsigned short>(value, out) ||
                     append_texts<double>(value, out) || append_texts<float>(value, out);
  if (!known) {
    out.emplace_back("<value of an unprintable type>");
  }
  return out;
}

po::option make_option(const std::string& name, const std::string& value,
                       const std::string& original) {
  po::option opt(name, {value});
  opt.original_tokens = {original};
  return opt;
}

}  // namespace

std::vector<config_entry> read_config_entries(std::istream& in, const std::string& path) {
  std::vector<config_entry> entries;
  std::string raw;
  for (int line = 1; std::getline(in, raw); ++line) {
    const auto text = trim(raw);
    if (text.empty() || text.front() == '#') {
      continue;
    }
    const auto where = path + ":" + std::to_string(line) + ": ";
    if (text.front() == '[') {
      throw std::runtime_error(where + "sections ('[name]') are not supported");
    }
    const auto eq = text.find('=');
    if (eq == std::string::npos || trim(std::string_view(text).substr(0, eq)).empty()) {
      throw std::runtime_error(where + "expected 'name = value'");
    }
    entries.push_back({trim(std::string_view(text).substr(0, eq)),
                       trim(std::string_view(text).substr(eq + 1)), line});
  }
  if (in.bad()) {
    throw std::runtime_error("cannot read config file '" + path + "'");
  }
  return entries;
}

std::string redact_url_password(std::string_view text) {
  std::string out(text);
  std::size_t from = 0;
  while ((from = out.find("://", from)) != std::string::npos) {
    from += 3;
    const auto end = out.find_first_of("/?# ", from);
    const auto authority = out.substr(from, end == std::string::npos ? end : end - from);
    const auto at = authority.rfind('@');
    if (at == std::string::npos) {
      continue;
    }
    const auto colon = authority.find(':');
    if (colon != std::string::npos && colon < at) {
      out.replace(from + colon + 1, at - colon - 1, "***");
    }
  }
  return out;
}

bool is_secret_option(const std::string& name) {
  return name.find("secret") != std::string::npos || name.find("token") != std::string::npos;
}

option_parser::option_parser(std::string program, std::string usage, std::string about)
    : program_(std::move(program)),
      usage_(std::move(usage)),
      about_(std::move(about)),
      options_("Options (flag --name, file 'name = value', env GWX_NAME)", 100, 50) {
  options_.add_options()("help,h", "print this help and exit")(
      "print-config",
      "print the effective value of every option and where it came from (default, file, env, "
      "flag), secrets masked, then exit")(
      "config", po::value<std::string>()->value_name("FILE"),
      "read options from FILE (lines 'name = value'; lines starting with '#' are comments)")(
      "log-level", po::value<std::string>()->default_value("info")->value_name("LEVEL"),
      "trace, debug, info, warn, error or off")(
      "log-format", po::value<std::string>()->default_value("text")->value_name("FORMAT"),
      "text or json (one JSON object per line)");
}

void option_parser::allow_positional(const std::string& name) {
  positional_ = name;
}

option_parser::result option_parser::read_sources(
    int argc, const char* const* argv, const std::vector<std::string>& environment) const {
  result out;

  // Command line.
  po::positional_options_description pos;
  if (!positional_.empty()) {
    pos.add(positional_.c_str(), -1);
  }
  const auto flags = po::command_line_parser(argc, argv).options(options_).positional(pos).run();
  std::map<std::string, boost::any> flag_values;
  for (const auto& opt : flags.options) {
    if (opt.string_key.empty() || opt.unregistered) {
      continue;
    }
    const auto& d = options_.find(opt.string_key, false);
    try {
      check_value(d, opt.value, flag_values[opt.string_key], "--" + opt.string_key, "");
    } catch (const po::multiple_occurrences&) {
      throw std::runtime_error("--" + opt.string_key + " given more than once");
    }
  }
  out.help = flag_values.contains("help");
  out.print_config = flag_values.contains("print-config");
  if (out.help) {
    po::store(flags, out.values);
    return out;
  }

  // Environment: GWX_MAX_MESSAGE ↔ max-message. Unknown GWX_* names are left alone (other
  // tools share the prefix).
  po::parsed_options env(&options_);
  std::map<std::string, boost::any> env_values;
  std::map<std::string, std::string> env_names;
  for (const auto& entry : environment) {
    const auto eq = entry.find('=');
    if (eq == std::string::npos || !entry.starts_with(k_env_prefix)) {
      continue;
    }
    const auto env_name = entry.substr(0, eq);
    std::string name = env_name.substr(k_env_prefix.size());
    for (auto& c : name) {
      c = c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    const auto* d = options_.find_nothrow(name, false);
    if (d == nullptr || command_line_only(name) || name == positional_) {
      continue;
    }
    const auto value = entry.substr(eq + 1);
    try {
      check_value(*d, {value}, env_values[name], env_name, " for option '" + name + "'");
    } catch (const po::multiple_occurrences&) {
      throw std::runtime_error(
          cat({env_name, ": option '", name, "' is also set by ", env_names[name]}));
    }
    env_names[name] = env_name;
    env.options.push_back(make_option(name, value, env_name));
  }

  // Config file: named by --config, else GWX_CONFIG.
  std::string config_path;
  if (const auto it = flag_values.find("config"); it != flag_values.end()) {
    config_path = boost::any_cast<std::string>(it->second);
  } else if (const auto it = env_values.find("config"); it != env_values.end()) {
    config_path = boost::any_cast<std::string>(it->second);
  }
  po::parsed_options file(&options_);
  if (!config_path.empty()) {
    std::ifstream in(config_path);
    if (!in) {
      throw std::runtime_error("cannot read config file '" + config_path + "'");
    }
    std::map<std::string, boost::any> file_values;
    std::map<std::string, int> first_line;
    for (const auto& entry : read_config_entries(in, config_path)) {
      const auto where = config_path + ":" + std::to_string(entry.line);
      const auto* d = options_.find_nothrow(entry.name, false);
      if (entry.name == "config") {
        throw std::runtime_error(where + ": 'config' cannot be set inside a config file");
      }
      if (d == nullptr || command_line_only(entry.name) || entry.name == positional_) {
        throw std::runtime_error(where + ": unknown option '" + entry.name + "'");
      }
      try {
        check_value(*d, {entry.value}, file_values[entry.name], where,
                    " for option '" + entry.name + "'");
      } catch (const po::multiple_occurrences&) {
        throw std::runtime_error(where + ": option '" + entry.name + "' is already set on line " +
                                 std::to_string(first_line[entry.name]));
      }
      first_line.emplace(entry.name, entry.line);
      file.options.push_back(make_option(entry.name, entry.value, entry.name));
    }
  }

  // po::store keeps the first explicit value of an option, so storing in order of precedence
  // gives flag > env > file > default.
  po::store(flags, out.values);
  po::store(env, out.values);
  po::store(file, out.values);
  for (const auto& opt : flags.options) {
    out.sources.emplace(opt.string_key, k_flag_source);
  }
  for (const auto& [name, env_name] : env_names) {
    out.sources.emplace(name, "env " + env_name);
  }
  for (const auto& opt : file.options) {
    out.sources.emplace(opt.string_key, "file " + config_path);
  }
  return out;
}

std::string option_parser::effective_config(const result& parsed) const {
  std::vector<std::pair<std::string, std::string>> lines;  // "name = value", source
  for (const auto& d : options_.options()) {
    const auto& name = d->long_name();
    if (command_line_only(name) || name == positional_) {
      continue;
    }
    const auto source_it = parsed.sources.find(name);
    std::string source = source_it != parsed.sources.end() ? source_it->second : "default";
    const auto value_it = parsed.values.find(name);
    const auto texts = value_it != parsed.values.end() ? value_texts(value_it->second.value())
                                                       : std::vector<std::string>{};
    if (texts.empty() && d->semantic()->is_required()) {
      source += " (required)";
    }
    if (is_secret_option(name)) {
      const bool set =
          std::any_of(texts.begin(), texts.end(), [](const std::string& t) { return !t.empty(); });
      lines.emplace_back(name + " = " + (set ? "<set>" : "<unset>"), source);
    } else if (texts.empty()) {
      lines.emplace_back(name + " = <unset>", source);
    } else {
      for (const auto& text : texts) {
        lines.emplace_back(cat({name, " = ", redact_url_password(text)}), source);
      }
    }
  }
  constexpr std::size_t k_max_column = 48;
  std::size_t column = 0;
  for (const auto& [text, source] : lines) {
    column = std::max(column, std::min(text.size(), k_max_column));
  }
  std::string out = "# " + program_ + ": effective configuration (value   # source)\n";
  for (const auto& [text, source] : lines) {
    out += text;
    out.append(text.size() < column ? column - text.size() : 0, ' ');
    out += "   # " + source + "\n";
  }
  return out;
}

po::variables_map option_parser::parse(int argc, char** argv) {
  std::vector<std::string> environment;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    environment.emplace_back(*e);
  }
  result parsed;
  try {
    parsed = read_sources(argc, argv, environment);
    if (parsed.help) {
      std::cout << "Usage: " << usage_ << "\n\n" << about_ << "\n\n" << options_ << std::endl;
      std::exit(0);
    }
    if (parsed.print_config) {
      // The logging options are checked like any start-up; everything else is as printed.
      init_logging(program_, parsed.values["log-level"].as<std::string>(),
                   parsed.values["log-format"].as<std::string>());
      for (const auto& check : print_checks_) {
        check(parsed.values);
      }
      std::cout << effective_config(parsed) << std::flush;
      std::exit(0);
    }
    po::notify(parsed.values);
    init_logging(program_, parsed.values["log-level"].as<std::string>(),
                 parsed.values["log-format"].as<std::string>());
  } catch (const std::exception& e) {
    die(program_, std::string(e.what()) + " (see --help)", 2);
  }
  return std::move(parsed.values);
}

void option_parser::add_print_check(std::function<void(const po::variables_map&)> check) {
  print_checks_.push_back(std::move(check));
}

bool on_off(const po::variables_map& vm, const std::string& name) {
  const auto value = vm[name].as<std::string>();
  if (value != "on" && value != "off") {
    throw std::invalid_argument("--" + name + " must be on or off");
  }
  return value == "on";
}

void die(const std::string& program, const std::string& message, int code) {
  std::cerr << program << ": " << message << std::endl;
  std::exit(code);
}

}  // namespace gwx

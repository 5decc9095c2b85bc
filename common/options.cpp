#include "common/options.hpp"

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "common/logging.hpp"

namespace gwx {

option_parser::option_parser(std::string program, std::string usage, std::string about)
    : program_(std::move(program)),
      usage_(std::move(usage)),
      about_(std::move(about)),
      options_("Options (flag --name, file 'name = value', env GWX_NAME)", 100, 50) {
  options_.add_options()("help,h", "print this help and exit")(
      "config", po::value<std::string>()->value_name("FILE"),
      "read options from FILE (lines 'name = value', '#' comments)")(
      "log-level", po::value<std::string>()->default_value("info")->value_name("LEVEL"),
      "trace, debug, info, warn, error or off")(
      "log-format", po::value<std::string>()->default_value("text")->value_name("FORMAT"),
      "text or json (one JSON object per line)");
}

void option_parser::allow_positional(const std::string& name) {
  positional_ = name;
}

po::variables_map option_parser::parse(int argc, char** argv) {
  po::variables_map vm;
  try {
    po::positional_options_description pos;
    if (!positional_.empty()) {
      pos.add(positional_.c_str(), -1);
    }
    po::store(po::command_line_parser(argc, argv).options(options_).positional(pos).run(), vm);

    const auto env_mapper = [this](const std::string& env_name) -> std::string {
      constexpr std::string_view k_prefix = "GWX_";
      if (env_name.rfind(k_prefix, 0) != 0) {
        return {};
      }
      std::string name = env_name.substr(k_prefix.size());
      for (auto& c : name) {
        c = c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
      if (name == "help" || (!positional_.empty() && name == positional_)) {
        return {};
      }
      return options_.find_nothrow(name, false) != nullptr ? name : std::string{};
    };
    po::store(po::parse_environment(options_, env_mapper), vm);

    if (vm.count("help") != 0U) {
      std::cout << "Usage: " << usage_ << "\n\n" << about_ << "\n\n" << options_ << std::endl;
      std::exit(0);
    }
    if (vm.count("config") != 0U) {
      const auto path = vm["config"].as<std::string>();
      std::ifstream file(path);
      if (!file) {
        throw std::runtime_error("cannot read config file '" + path + "'");
      }
      po::store(po::parse_config_file(file, options_, false), vm);
    }
    po::notify(vm);
    init_logging(program_, vm["log-level"].as<std::string>(), vm["log-format"].as<std::string>());
  } catch (const std::exception& e) {
    die(program_, std::string(e.what()) + " (see --help)", 2);
  }
  return vm;
}

void die(const std::string& program, const std::string& message, int code) {
  std::cerr << program << ": " << message << std::endl;
  std::exit(code);
}

}  // namespace gwx

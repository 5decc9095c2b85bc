#include "worker/sdk/app_loader.hpp"

#include <dlfcn.h>

#include <stdexcept>

#include "worker/apps/builtin_apps.hpp"
#include "worker/sdk/app.hpp"

namespace gwx {
namespace {

bool is_library_path(const std::string& s) {
  return s.find('/') != std::string::npos ||
         (s.size() > 3 && s.compare(s.size() - 3, 3, ".so") == 0);
}

std::unique_ptr<handler> load_library(const std::string& path) {
  // Never unloaded: the handler's code must outlive every call into it.
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = dlerror();
    throw std::runtime_error("cannot load app library " + path + ": " +
                             (why != nullptr ? why : "unknown error"));
  }
  using abi_fn = int (*)();
  using create_fn = handler* (*)();
  auto abi = reinterpret_cast<abi_fn>(dlsym(lib, "gwx_app_abi_version"));
  auto create = reinterpret_cast<create_fn>(dlsym(lib, "gwx_create_app"));
  if (abi == nullptr || create == nullptr) {
    throw std::runtime_error("app library " + path +
                             " has no gwx_create_app/gwx_app_abi_version (use GWX_APP(...))");
  }
  if (abi() != GWX_SDK_ABI_VERSION) {
    throw std::runtime_error("app library " + path + " was built for SDK ABI " +
                             std::to_string(abi()) + ", this worker has " +
                             std::to_string(GWX_SDK_ABI_VERSION));
  }
  std::unique_ptr<handler> app(create());
  if (!app) {
    throw std::runtime_error("app library " + path + ": gwx_create_app returned null");
  }
  return app;
}

}  // namespace

std::unique_ptr<handler> load_app(const std::string& name_or_path) {
  if (is_library_path(name_or_path)) {
    return load_library(name_or_path);
  }
  auto app = apps::make_builtin_app(name_or_path);
  if (!app) {
    std::string names;
    for (const auto& n : apps::builtin_app_names()) {
      names += (names.empty() ? "" : ", ") + n;
    }
    throw std::runtime_error("unknown app '" + name_or_path + "' (built-in: " + names +
                             "; or a path to a .so)");
  }
  return app;
}

}  // namespace gwx

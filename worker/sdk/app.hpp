#pragma once

#include "worker/sdk/handler.hpp"

/// Bumped whenever the SDK's handler or API layout changes incompatibly; gwx-worker refuses an
/// app built against another version.
#define GWX_SDK_ABI_VERSION 1

/// Makes a shared library loadable with `gwx-worker --app ./libyourapp.so`: defines the C entry
/// points gwx-worker looks up. Use once, in one .cpp of the library, with your handler class
/// (default-constructible):  GWX_APP(my_handler)
#define GWX_APP(handler_class)                                                         \
  extern "C" __attribute__((visibility("default"))) int gwx_app_abi_version() {        \
    return GWX_SDK_ABI_VERSION;                                                        \
  }                                                                                    \
  extern "C" __attribute__((visibility("default"))) ::gwx::handler* gwx_create_app() { \
    return new handler_class();                                                        \
  }

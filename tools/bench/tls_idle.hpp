#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "tools/bench/load.hpp"

namespace gwx::bench {

/// hold_idle() for TLS URLs (wss://, tls+…): opens `connections` clients — TLS handshake, and
/// for wss the WebSocket upgrade — and keeps them open until `keep_open` returns. The server's
/// certificate is not verified (the benchmark measures memory, against its own servers), and
/// each client holds only OpenSSL's connection state (idle buffers released), so a holder
/// process stays small.
void hold_tls_idle(const load_options& opt,
                   const std::function<void(std::size_t opened, std::size_t failed,
                                            const std::string& first_error)>& keep_open);

}  // namespace gwx::bench

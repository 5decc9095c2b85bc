#pragma once

#include <asio.hpp>
#include <functional>

struct redisAsyncContext;

namespace gwx::bus {

/// Drives a hiredis async context (hiredis 0.14) from an Asio io_context: hiredis asks for
/// read/write readiness of its socket through the context's `ev` hooks; this adapter waits for
/// it with a stream_descriptor that does not own the socket (hiredis closes it) and calls
/// redisAsyncHandleRead/Write. The adapter frees itself when hiredis frees the context.
///
/// `after_read` (optional) runs after each read the context handled, while it is still alive:
/// the place to check how much of an unfinished reply hiredis holds. Everything runs on `io`'s
/// thread; the context must only be used there.
///
/// Returns false when the context already failed (its `err` set) and nothing was attached.
bool attach_redis_to_asio(asio::io_context& io, redisAsyncContext* ac,
                          std::function<void(redisAsyncContext*)> after_read = {});

}  // namespace gwx::bus

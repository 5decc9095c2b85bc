#include "common/registry/register_rpc.hpp"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <array>

#include "common/registry/register_auth.hpp"

namespace gwx::registry {

namespace {

// grpc::StatusCode names, indexed by code.
constexpr std::array<const char*, 17> k_code_names = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED (check the token)",
};

}  // namespace

std::shared_ptr<grpc::Channel> make_register_channel(const host_port& address) {
  grpc::ChannelArguments args;
  // gRPC's default reconnect backoff grows to two minutes; our loops retry every <= 2 s and
  // would otherwise hit a channel that refuses to try.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  // A Watch stream may stay silent for hours; pings detect a dead peer.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  return grpc::CreateCustomChannel(address.to_string(), grpc::InsecureChannelCredentials(), args);
}

v1::GatewayInfo to_proto(const gateway_entry& entry) {
  v1::GatewayInfo info;
  info.set_gateway_id(entry.gateway_id);
  info.set_internal_address(entry.internal_address);
  for (const auto& listener : entry.listeners) {
    info.add_listeners(listener);
  }
  info.set_name(entry.name);
  return info;
}

gateway_entry from_proto(const v1::GatewayInfo& info) {
  return gateway_entry{info.gateway_id(),
                       info.internal_address(),
                       {info.listeners().begin(), info.listeners().end()},
                       info.name()};
}

void add_auth_metadata(grpc::ClientContext& context, const std::string& token,
                       std::string_view method) {
  if (!token.empty()) {
    context.AddMetadata(k_auth_metadata, make_auth_proof(token, method));
  }
}

std::string describe(const grpc::Status& status) {
  const auto code = static_cast<std::size_t>(status.error_code());
  const char* name = code < k_code_names.size() ? k_code_names[code] : "UNKNOWN";
  return std::string(name) + ": " + status.error_message();
}

}  // namespace gwx::registry

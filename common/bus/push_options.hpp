#pragma once

#include <boost/program_options.hpp>
#include <string>

namespace gwx::bus {

/// Adds `--push-via links|bus` and `--bus URL` to a pushing process's options (gwx-worker,
/// gwxctl), with the same help everywhere.
void add_push_options(boost::program_options::options_description& options);

/// The bus URL the process's writes go to, or empty for the links. Throws
/// std::invalid_argument with a one-line reason (`--push-via bus` without a valid --bus, an
/// unknown mode).
std::string push_bus_of(const boost::program_options::variables_map& values);

}  // namespace gwx::bus

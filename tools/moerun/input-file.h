// Text inputs named on the command line (-f prompt files).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace moerun::cli {

constexpr uint64_t kMaxInputBytes = uint64_t{64} << 20;

// The whole of `path`: a regular file, or a pipe or device read to its end; at most kMaxInputBytes
// (a larger input, a directory or an unreadable path is an error naming the path and `what`).
std::string read_input_file(const std::string &path, std::string_view what);

}  // namespace moerun::cli

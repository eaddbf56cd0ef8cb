#include "moerun/runtime/gguf.h"
namespace moerun::gguf {
Error::Error(std::string file, uint64_t offset, std::string field, const std::string &message)
    : std::runtime_error(file + ": offset " + std::to_string(offset) + ": " + field + ": " + message),
      file_(std::move(file)),
      offset_(offset),
      field_(std::move(field)) {}
}  // namespace moerun::gguf

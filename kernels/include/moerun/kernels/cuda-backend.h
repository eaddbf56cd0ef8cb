// Entry points of the CUDA backend, seen only by kernels/src/registry.cpp and kernels/cuda.
#pragma once
#include <memory>
#include <string>

#include "moerun/kernels/backend.h"

namespace moerun::kernels::cuda {
// True when a CUDA device can be used; *reason says which device, or why not.
bool probe(std::string *reason);
std::unique_ptr<Backend> make_backend();
}  // namespace moerun::kernels::cuda

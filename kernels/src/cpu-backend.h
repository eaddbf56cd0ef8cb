// The CPU backend: host memory, reference kernels from quant/ until the vectorised ones land.
#pragma once
#include <memory>

#include "moerun/kernels/backend.h"

namespace moerun::kernels {
std::unique_ptr<Backend> make_cpu_backend();
}

// Device dequantization of GGUF blocks to float: one thread per output element group.
// Each launcher takes raw device pointers, the element count and a stream; it returns the
// launch status. The CPU reference with the same meaning is quant::dequantize_row.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "moerun/quant/types.h"

namespace moerun::kernels::cuda {

// src: device blocks of type t, n elements (n % block_size(t) == 0); dst: [n] device floats.
// Returns cudaErrorInvalidValue for a type without a device kernel.
cudaError_t launch_dequantize(quant::Type t, const void *src, float *dst, int64_t n, cudaStream_t stream);
bool has_device_dequantize(quant::Type t);

}  // namespace moerun::kernels::cuda

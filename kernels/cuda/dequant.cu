// Dequantization kernels: one thread per element for F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
// IQ4_NL and Q4_K, one per 32-element chunk for Q5_K, Q6_K, Q2_K, Q3_K and IQ4_XS (block-dot.cuh's
// formulas).
// Block layouts (bytes, little-endian; f16 = IEEE half), see quant/include/moerun/quant/blocks.h:
//   Q8_0 [34]:  f16 d | i8 qs[32]                     x = d * q
//   Q4_0 [18]:  f16 d | u8 qs[16]                     x[j] = d * ((qs[j] & 15) - 8),
//                                                     x[j+16] = d * ((qs[j] >> 4) - 8)
//   Q4_1 [20], Q5_0 [22], Q5_1 [24], IQ4_NL [18], IQ4_XS [136]: see block-dot.cuh
//   Q4_K [144]: f16 d | f16 dmin | u8 scales[12] | u8 qs[128]
//               8 sub-blocks of 32 with 6-bit scale sc and min m; x = d*sc*q - dmin*m, where sub-block
//               pairs (2i, 2i+1) take the low / high nibbles of qs[32i .. 32i+32).
#include <cuda_fp16.h>

#include "block-dot.cuh"
#include "dequant.cuh"

namespace moerun::kernels::cuda {
namespace {

__device__ __forceinline__ float load_half(const uint8_t *p) {
    __half_raw r;
    r.x = static_cast<unsigned short>(p[0] | (p[1] << 8));
    return __half2float(__half(r));
}

// One thread per element.
__global__ void dequant_f32(const float *src, float *dst, int64_t n) {
    int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i < n) dst[i] = src[i];
}

__global__ void dequant_f16(const uint8_t *src, float *dst, int64_t n) {
    int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i < n) dst[i] = load_half(src + 2 * i);
}

__global__ void dequant_bf16(const uint16_t *src, float *dst, int64_t n) {
    int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i < n) dst[i] = __uint_as_float(static_cast<uint32_t>(src[i]) << 16);
}

__global__ void dequant_q8_0(const uint8_t *src, float *dst, int64_t n) {
    int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i >= n) return;
    const uint8_t *b = src + (i / 32) * 34;
    dst[i] = load_half(b) * static_cast<float>(static_cast<int8_t>(b[2 + i % 32]));
}

// Q4_0 / Q4_1 / Q5_0 / Q5_1: element j of a 32-element block of BB bytes with 4-bit quants at
// b + QS, the fifth bits in the u32 at b + QH (Q5_*; QH < 0 for the others), the minimum at b + 2
// (MIN: Q4_1, Q5_1), and OFFSET subtracted from the quant (Q4_0: 8, Q5_0: 16).
template <int BB, int QS, int QH, bool MIN, int OFFSET>
__global__ void dequant_q32(const uint8_t *src, float *dst, int64_t n) {
    int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i >= n) return;
    const uint8_t *b = src + (i / 32) * BB;
    const int j = static_cast<int>(i % 32);
    int q = nibble32(b + QS, j);
    if constexpr (QH >= 0) q = q5(b + QS, load_u32(b + QH), j);
    const float v = load_half(b) * static_cast<float>(q - OFFSET);
    dst[i] = MIN ? v + load_half(b + 2) : v;
}

__global__ void dequant_iq4_nl(const uint8_t *src, float *dst, int64_t n) {
    int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i >= n) return;
    const uint8_t *b = src + (i / 32) * 18;
    dst[i] = load_half(b) * static_cast<float>(iq4_value(nibble32(b + 2, static_cast<int>(i % 32))));
}

__global__ void dequant_q4_k(const uint8_t *src, float *dst, int64_t n) {
    int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i >= n) return;
    const uint8_t *b = src + (i / 256) * 144;
    const int k = static_cast<int>(i % 256);
    const int sub = k / 32;    // sub-block 0..7
    const int pair = sub / 2;  // 64-element chunk 0..3
    const int l = k % 32;
    const uint8_t q = b[16 + 32 * pair + l];
    const int v = (sub % 2 == 0) ? (q & 15) : (q >> 4);
    int sc, m;
    k4_scale_min(sub, b + 4, sc, m);
    const float d = load_half(b) * static_cast<float>(sc);
    const float mn = load_half(b + 2) * static_cast<float>(m);
    dst[i] = d * static_cast<float>(v) - mn;
}

// One thread per 32-element chunk (block-dot.cuh's dequant_chunk_*): Q5_K, Q6_K, Q2_K, Q3_K, IQ4_XS.
template <void (*Chunk)(const uint8_t *, int, float *), int BS, int BB>
__global__ void dequant_chunks(const uint8_t *src, float *dst, int64_t n_chunks) {
    const int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (c >= n_chunks) return;
    const int64_t e = 32 * c;
    float y[32];
    Chunk(src + (e / BS) * BB, static_cast<int>((e % BS) / 32), y);
#pragma unroll
    for (int l = 0; l < 32; ++l) dst[e + l] = y[l];
}

template <void (*Chunk)(const uint8_t *, int, float *), int BB>
cudaError_t launch_chunks(const uint8_t *src, float *dst, int64_t n, cudaStream_t stream) {
    constexpr int kThreads = 128;
    const int64_t n_chunks = n / 32;
    dequant_chunks<Chunk, 256, BB>
        <<<static_cast<unsigned>((n_chunks + kThreads - 1) / kThreads), kThreads, 0, stream>>>(src, dst,
                                                                                               n_chunks);
    return cudaGetLastError();
}

}  // namespace

bool has_device_dequantize(quant::Type t) {
    switch (t) {
        case quant::Type::F32:
        case quant::Type::F16:
        case quant::Type::BF16:
        case quant::Type::Q8_0:
        case quant::Type::Q4_0:
        case quant::Type::Q4_1:
        case quant::Type::Q5_0:
        case quant::Type::Q5_1:
        case quant::Type::IQ4_NL:
        case quant::Type::IQ4_XS:
        case quant::Type::Q4_K:
        case quant::Type::Q5_K:
        case quant::Type::Q6_K:
        case quant::Type::Q2_K:
        case quant::Type::Q3_K:
            return true;
        default:
            return false;
    }
}

cudaError_t launch_dequantize(quant::Type t, const void *src, float *dst, int64_t n, cudaStream_t stream) {
    if (n <= 0) return cudaSuccess;
    constexpr int kThreads = 256;
    const unsigned blocks = static_cast<unsigned>((n + kThreads - 1) / kThreads);
    const auto *s = static_cast<const uint8_t *>(src);
    switch (t) {
        case quant::Type::F32:
            dequant_f32<<<blocks, kThreads, 0, stream>>>(static_cast<const float *>(src), dst, n);
            break;
        case quant::Type::F16:
            dequant_f16<<<blocks, kThreads, 0, stream>>>(s, dst, n);
            break;
        case quant::Type::BF16:
            dequant_bf16<<<blocks, kThreads, 0, stream>>>(static_cast<const uint16_t *>(src), dst, n);
            break;
        case quant::Type::Q8_0:
            dequant_q8_0<<<blocks, kThreads, 0, stream>>>(s, dst, n);
            break;
        case quant::Type::Q4_0:  // d | qs[16]
            dequant_q32<18, 2, -1, false, 8><<<blocks, kThreads, 0, stream>>>(s, dst, n);
            break;
        case quant::Type::Q4_1:  // d | m | qs[16]
            dequant_q32<20, 4, -1, true, 0><<<blocks, kThreads, 0, stream>>>(s, dst, n);
            break;
        case quant::Type::Q5_0:  // d | qh | qs[16]
            dequant_q32<22, 6, 2, false, 16><<<blocks, kThreads, 0, stream>>>(s, dst, n);
            break;
        case quant::Type::Q5_1:  // d | m | qh | qs[16]
            dequant_q32<24, 8, 4, true, 0><<<blocks, kThreads, 0, stream>>>(s, dst, n);
            break;
        case quant::Type::Q4_K:
            dequant_q4_k<<<blocks, kThreads, 0, stream>>>(s, dst, n);
            break;
        case quant::Type::Q5_K:
            return launch_chunks<dequant_chunk_q5_k, 176>(s, dst, n, stream);
        case quant::Type::Q6_K:
            return launch_chunks<dequant_chunk_q6_k, 210>(s, dst, n, stream);
        case quant::Type::Q2_K:
            return launch_chunks<dequant_chunk_q2_k, 84>(s, dst, n, stream);
        case quant::Type::Q3_K:
            return launch_chunks<dequant_chunk_q3_k, 110>(s, dst, n, stream);
        case quant::Type::IQ4_NL:
            dequant_iq4_nl<<<blocks, kThreads, 0, stream>>>(s, dst, n);
            break;
        case quant::Type::IQ4_XS:
            return launch_chunks<dequant_chunk_iq4_xs, 136>(s, dst, n, stream);
        default:
            return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

}  // namespace moerun::kernels::cuda

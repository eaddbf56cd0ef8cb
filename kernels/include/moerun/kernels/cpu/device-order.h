// The CUDA backend's decode arithmetic on the host, bit for bit: the CPU fallback of a CUDA run
// computes a missing expert's row here, so the tokens do not depend on which experts were resident
// (the CPU kernels of ops.h quantize activations to 8 bits and sum in another order).
//
// The order is the CUDA kernels' (kernels/cuda/mmv.cu, block-dot.cuh, exact-ops.cuh): row r of
// W x sums its 32-element chunks c into lane c % 32 (in order of c), each chunk's dot product in
// the fixed 8-partial order of dot8, then the 32 lanes meet in a butterfly (xor 16, 8, 4, 2, 1) and
// lane 0's sum is the result. Every rounding is an IEEE operation named there, none fused by a
// compiler, so a GPU and this code agree exactly by construction; test-gpu-ops checks it on a
// device (so far run on the CUDA emulator only, which runs the CUDA code with the host's floats).
#pragma once

#include <cstdint>

#include "moerun/kernels/backend.h"
#include "moerun/kernels/cpu/thread-pool.h"
#include "moerun/quant/types.h"

namespace moerun::kernels::cpu {

// Weight types with a device-order product: those of the CUDA matrix-vector kernel (F32, F16,
// Q8_0, Q4_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K).
bool device_order_supported(quant::Type t);

// y[rows] = W x for one token, W: rows x cols of `t` (cols a multiple of its block size and of 32).
void device_order_matvec(ThreadPool &pool, quant::Type t, const void *w, const float *x, float *y,
                         int64_t rows, int64_t cols);

// One expert's matrices in host memory.
struct HostExpert {
    quant::Type gate_type, up_type, down_type;
    const void *gate, *up, *down;  // [n_ff x n_embd], [n_ff x n_embd], [n_embd x n_ff]
    int64_t n_embd, n_ff;
};

// One expert's unweighted output row for one token, as the CUDA backend's expert_ffn writes it to
// rows_out: g = gate x, u = up x (both [n_ff]), g = silu(g) * u (exact-ops.cuh's swiglu_rn),
// out[n_embd] = down g. g and u are scratch of n_ff floats each.
void device_order_expert(ThreadPool &pool, const HostExpert &e, const float *x, float *g, float *u,
                         float *out);

// The same row as a backend with host math `math` computes it (Backend::host_math): in device
// order, or with the CPU kernels of ops.h (matmul_group of gate and up, swiglu, matmul of down):
// what the CPU fallback runs for a miss, and what its cost model times.
void host_expert_row(ThreadPool &pool, Backend::HostMath math, const HostExpert &e, const float *x, float *g,
                     float *u, float *out);

}  // namespace moerun::kernels::cpu

// Quantized weight row . converted activation row (see vec-dot.h for the definition).
// Each weight block is unpacked to int8 quants with integer sub-block scales (and mins), then
// multiplied with the int8 activation in exact integer arithmetic; only the per-block float
// scaling differs in rounding order from llama.cpp. Row functions are compiled for AVX-512,
// AVX2 and baseline x86-64 and picked at run time (target_clones).
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "moerun/kernels/cpu/vec-dot.h"
#include "moerun/quant/blocks.h"
#include "moerun/quant/half.h"
#include "vec-dot-impl.h"

#if defined(__x86_64__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define MOERUN_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MOERUN_MULTIVERSION
#endif

namespace moerun::kernels::cpu {
namespace {

using quant::fp16_to_fp32;

// A K-quant super-block unpacked: value(e) = d * sc[e / sub] * q[e] - dmin * m[e / sub].
struct KBlock {
    int8_t q[256];
    int32_t sc[16];
    int32_t m[16];
    float d, dmin;
};

void unpack(const quant::BlockQ2_K &b, KBlock &k) {
    for (int h = 0; h < 2; ++h)
        for (int s = 0; s < 4; ++s)
            for (int l = 0; l < 32; ++l)
                k.q[128 * h + 32 * s + l] = static_cast<int8_t>((b.qs[32 * h + l] >> (2 * s)) & 3);
    for (int j = 0; j < 16; ++j) {
        k.sc[j] = b.scales[j] & 15;
        k.m[j] = b.scales[j] >> 4;
    }
    k.d = fp16_to_fp32(b.d);
    k.dmin = fp16_to_fp32(b.dmin);
}

void unpack(const quant::BlockQ3_K &b, KBlock &k) {
    for (int h = 0; h < 2; ++h)
        for (int s = 0; s < 4; ++s)
            for (int l = 0; l < 32; ++l) {
                const int q = (b.qs[32 * h + l] >> (2 * s)) & 3;
                const int hbit = (b.hmask[l] >> (4 * h + s)) & 1;
                k.q[128 * h + 32 * s + l] = static_cast<int8_t>(q - (hbit ? 0 : 4));
            }
    for (int j = 0; j < 16; ++j) {
        k.sc[j] = quant::q3_k_scale(b.scales, j) - 32;
        k.m[j] = 0;
    }
    k.d = fp16_to_fp32(b.d);
    k.dmin = 0;
}

void unpack(const quant::BlockQ4_K &b, KBlock &k) {
    for (int c = 0; c < 4; ++c)
        for (int l = 0; l < 64; ++l)
            k.q[64 * c + l] = static_cast<int8_t>((b.qs[32 * c + l % 32] >> (4 * (l / 32))) & 15);
    for (int j = 0; j < 8; ++j) quant::q4_k_scale_min(b.scales, j, k.sc[j], k.m[j]);
    k.d = fp16_to_fp32(b.d);
    k.dmin = fp16_to_fp32(b.dmin);
}

void unpack(const quant::BlockQ5_K &b, KBlock &k) {
    for (int c = 0; c < 4; ++c)
        for (int l = 0; l < 64; ++l) {
            const int lo = (b.qs[32 * c + l % 32] >> (4 * (l / 32))) & 15;
            const int hi = (b.qh[l % 32] >> (2 * c + l / 32)) & 1;
            k.q[64 * c + l] = static_cast<int8_t>(lo | (hi << 4));
        }
    for (int j = 0; j < 8; ++j) quant::q4_k_scale_min(b.scales, j, k.sc[j], k.m[j]);
    k.d = fp16_to_fp32(b.d);
    k.dmin = fp16_to_fp32(b.dmin);
}

void unpack(const quant::BlockQ6_K &b, KBlock &k) {
    for (int h = 0; h < 2; ++h)
        for (int s = 0; s < 4; ++s)
            for (int l = 0; l < 32; ++l) {
                const int lo = (b.ql[64 * h + 32 * (s & 1) + l] >> (4 * (s >> 1))) & 15;
                const int hi = (b.qh[32 * h + l] >> (2 * s)) & 3;
                k.q[128 * h + 32 * s + l] = static_cast<int8_t>((lo | (hi << 4)) - 32);
            }
    for (int j = 0; j < 16; ++j) {
        k.sc[j] = b.scales[j];
        k.m[j] = 0;
    }
    k.d = fp16_to_fp32(b.d);
    k.dmin = 0;
}

// IQ4_XS: 8 sub-blocks of 32, no mins; the 4-bit indices pick kIQ4Values.
void unpack(const quant::BlockIQ4_XS &b, KBlock &k) {
    for (int ib = 0; ib < 8; ++ib) {
        for (int l = 0; l < 16; ++l) {
            k.q[32 * ib + l] = quant::kIQ4Values[b.qs[16 * ib + l] & 15];
            k.q[32 * ib + l + 16] = quant::kIQ4Values[b.qs[16 * ib + l] >> 4];
        }
        k.sc[ib] = quant::iq4_xs_scale(b.scales_h, b.scales_l, ib) - 32;
        k.m[ib] = 0;
    }
    k.d = fp16_to_fp32(b.d);
    k.dmin = 0;
}

// Sub-block size (16 or 32) and whether the type has mins, per K type.
template <class B>
constexpr int kSub = 16;
template <>
constexpr int kSub<quant::BlockQ4_K> = 32;
template <>
constexpr int kSub<quant::BlockQ5_K> = 32;
template <>
constexpr int kSub<quant::BlockIQ4_XS> = 32;

// n_act (1..kMaxDotRows) activation rows against one weight row: each block is unpacked once;
// per row the same operations in the same order whatever n_act is.
template <class B>
MOERUN_MULTIVERSION void rows_dot_k(const void *w, const void *const *act, int n_act, int64_t n, float *out) {
    const auto *x = static_cast<const B *>(w);
    constexpr int sub = kSub<B>, nsub = 256 / sub;
    float sum[kMaxDotRows] = {};
    KBlock k;
    for (int64_t i = 0; i < n / 256; ++i) {
        unpack(x[i], k);
        for (int t = 0; t < n_act; ++t) {
            const ActQ8_K &y = static_cast<const ActQ8_K *>(act[t])[i];
            int32_t isum = 0, msum = 0;
            for (int s = 0; s < nsub; ++s) {
                int32_t si = 0;
                for (int l = 0; l < sub; ++l) si += int32_t{k.q[s * sub + l]} * int32_t{y.qs[s * sub + l]};
                isum += k.sc[s] * si;
                const int32_t bs = sub == 16 ? y.bsums[s] : y.bsums[2 * s] + y.bsums[2 * s + 1];
                msum += k.m[s] * bs;
            }
            sum[t] += (y.d * k.d) * static_cast<float>(isum) - (y.d * k.dmin) * static_cast<float>(msum);
        }
    }
    for (int t = 0; t < n_act; ++t) out[t] = sum[t];
}

// Legacy 32-element blocks: value = d * q (+ m).
struct LBlock {
    int8_t q[32];
    float d, m;
};

void unpack(const quant::BlockQ4_0 &b, LBlock &k) {
    for (int j = 0; j < 16; ++j) {
        k.q[j] = static_cast<int8_t>((b.qs[j] & 15) - 8);
        k.q[j + 16] = static_cast<int8_t>((b.qs[j] >> 4) - 8);
    }
    k.d = fp16_to_fp32(b.d);
    k.m = 0;
}
void unpack(const quant::BlockQ4_1 &b, LBlock &k) {
    for (int j = 0; j < 16; ++j) {
        k.q[j] = static_cast<int8_t>(b.qs[j] & 15);
        k.q[j + 16] = static_cast<int8_t>(b.qs[j] >> 4);
    }
    k.d = fp16_to_fp32(b.d);
    k.m = fp16_to_fp32(b.m);
}
template <class B>
void unpack5(const B &b, LBlock &k, int offset) {
    uint32_t qh;
    std::memcpy(&qh, b.qh, 4);
    for (int j = 0; j < 16; ++j) {
        k.q[j] = static_cast<int8_t>(((b.qs[j] & 15) | (((qh >> j) & 1) << 4)) - offset);
        k.q[j + 16] = static_cast<int8_t>(((b.qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - offset);
    }
    k.d = fp16_to_fp32(b.d);
}
void unpack(const quant::BlockQ5_0 &b, LBlock &k) {
    unpack5(b, k, 16);
    k.m = 0;
}
void unpack(const quant::BlockQ5_1 &b, LBlock &k) {
    unpack5(b, k, 0);
    k.m = fp16_to_fp32(b.m);
}
void unpack(const quant::BlockIQ4_NL &b, LBlock &k) {
    for (int j = 0; j < 16; ++j) {
        k.q[j] = quant::kIQ4Values[b.qs[j] & 15];
        k.q[j + 16] = quant::kIQ4Values[b.qs[j] >> 4];
    }
    k.d = fp16_to_fp32(b.d);
    k.m = 0;
}
void unpack(const quant::BlockQ8_0 &b, LBlock &k) {
    std::memcpy(k.q, b.qs, 32);
    k.d = fp16_to_fp32(b.d);
    k.m = 0;
}

template <class B, class A>
MOERUN_MULTIVERSION void rows_dot_legacy(const void *w, const void *const *act, int n_act, int64_t n,
                                         float *out) {
    const auto *x = static_cast<const B *>(w);
    float sum[kMaxDotRows] = {};
    LBlock k;
    for (int64_t i = 0; i < n / 32; ++i) {
        unpack(x[i], k);
        for (int t = 0; t < n_act; ++t) {
            const A &y = static_cast<const A *>(act[t])[i];
            int32_t si = 0;
            for (int l = 0; l < 32; ++l) si += int32_t{k.q[l]} * int32_t{y.qs[l]};
            sum[t] += (k.d * y.d) * static_cast<float>(si);
            if constexpr (std::is_same_v<A, ActQ8_1>) sum[t] += k.m * y.s;
        }
    }
    for (int t = 0; t < n_act; ++t) out[t] = sum[t];
}

MOERUN_MULTIVERSION float row_dot_f32(const void *w, const void *act, int64_t n) {
    const auto *a = static_cast<const float *>(w);
    const auto *b = static_cast<const float *>(act);
    float acc[16] = {};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; ++k) acc[k] += a[i + k] * b[i + k];
    float s = 0;
    for (; i < n; ++i) s += a[i] * b[i];
    for (float v : acc) s += v;
    return s;
}

template <float (*Convert)(uint16_t)>
MOERUN_MULTIVERSION float row_dot_half(const void *w, const void *act, int64_t n) {
    const auto *a = static_cast<const uint16_t *>(w);
    const auto *b = static_cast<const float *>(act);
    float acc[16] = {};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; ++k) acc[k] += Convert(a[i + k]) * b[i + k];
    float s = 0;
    for (; i < n; ++i) s += Convert(a[i]) * b[i];
    for (float v : acc) s += v;
    return s;
}

}  // namespace

Isa best_isa() {
    static const Isa best = avx512::supported() ? Isa::avx512 : avx2::supported() ? Isa::avx2 : Isa::generic;
    return best;
}

const char *isa_name(Isa isa) {
    return isa == Isa::avx512 ? "avx512" : isa == Isa::avx2 ? "avx2" : "generic";
}

namespace {
Isa initial_isa() {
    Isa isa = best_isa();
    if (const char *env = std::getenv("MOERUN_CPU_ISA")) {
        const std::string v = env;
        const Isa want = v == "generic" ? Isa::generic : v == "avx2" ? Isa::avx2 : Isa::avx512;
        isa = std::min(isa, want);
    }
    return isa;
}
std::atomic<Isa> g_isa{initial_isa()};
}  // namespace

Isa active_isa() {
    return g_isa.load(std::memory_order_relaxed);
}

void set_isa(Isa isa) {
    g_isa.store(std::min(isa, best_isa()));
}

namespace {
// The AVX2 single-row kernel of t, or null (the generic kernel then).
using RowDot = float (*)(const void *, const void *, int64_t);
RowDot avx2_row(quant::Type t) {
    switch (t) {
        case quant::Type::Q2_K:
            return avx2::dot_q2_k;
        case quant::Type::Q3_K:
            return avx2::dot_q3_k;
        case quant::Type::Q4_K:
            return avx2::dot_q4_k;
        case quant::Type::Q5_K:
            return avx2::dot_q5_k;
        case quant::Type::Q6_K:
            return avx2::dot_q6_k;
        case quant::Type::IQ4_XS:
            return avx2::dot_iq4_xs;
        default:
            return nullptr;
    }
}
// The AVX2 four-row kernel of t, or null.
using RowDotX4 = void (*)(const void *, const void *const[4], int64_t, float[4]);
RowDotX4 avx2_x4(quant::Type t) {
    switch (t) {
        case quant::Type::Q2_K:
            return avx2::dot_q2_k_x4;
        case quant::Type::Q3_K:
            return avx2::dot_q3_k_x4;
        case quant::Type::Q4_K:
            return avx2::dot_q4_k_x4;
        case quant::Type::Q5_K:
            return avx2::dot_q5_k_x4;
        case quant::Type::Q6_K:
            return avx2::dot_q6_k_x4;
        case quant::Type::IQ4_XS:
            return avx2::dot_iq4_xs_x4;
        default:
            return nullptr;
    }
}
}  // namespace

float vec_dot(quant::Type t, const void *w, const void *act, int64_t n) {
    float out;
    vec_dot_rows(t, w, &act, 1, n, &out);
    return out;
}

// Per chunk of up to kMaxDotRows activation rows, the kernel vec_dot picks for one row: the
// AVX-512 one, else the AVX2 one (four rows per pass where there is one), else the generic one
// (all rows of the chunk per pass).
void vec_dot_rows(quant::Type t, const void *w, const void *const *act, int n_act, int64_t n, float *out) {
    const Isa isa = active_isa();
    const RowDot row = isa >= Isa::avx2 ? avx2_row(t) : nullptr;
    const RowDotX4 x4 = isa == Isa::avx2 ? avx2_x4(t) : nullptr;
    for (int k = 0; k < n_act;) {
        const int m = std::min(kMaxDotRows, n_act - k);
        if ((isa == Isa::avx512 && avx512::dot_rows(t, w, act + k, m, n, out + k)) ||
            (isa == Isa::avx2 && avx2::lanes32_rows(t, w, act + k, m, n, out + k))) {
            k += m;
        } else if (row == nullptr) {
            vec_dot_generic_rows(t, w, act + k, m, n, out + k);
            k += m;
        } else if (x4 != nullptr && m >= 4) {
            x4(w, act + k, n, out + k);
            k += 4;
        } else {
            out[k] = row(w, act[k], n);
            ++k;
        }
    }
}

void vec_dot_tile(quant::Type t, const void *w, size_t rb, int64_t n_rows, const void *act, size_t ab,
                  int64_t n_act, int64_t n, float *y, int64_t ldy) {
    const Isa isa = active_isa();
    if (isa == Isa::avx512 && avx512::dot_tile(t, w, rb, n_rows, act, ab, n_act, n, y, ldy)) return;
    if (isa == Isa::avx2 && (avx2::lanes_k_tile(t, w, rb, n_rows, act, ab, n_act, n, y, ldy) ||
                             avx2::lanes32_tile(t, w, rb, n_rows, act, ab, n_act, n, y, ldy)))
        return;
    const auto *wb = static_cast<const uint8_t *>(w);
    const auto *a = static_cast<const uint8_t *>(act);
    const void *ptrs[kMaxDotRows];
    float out[kMaxDotRows];
    for (int64_t r = 0; r < n_rows; ++r)
        for (int64_t k0 = 0; k0 < n_act; k0 += kMaxDotRows) {
            const int m = static_cast<int>(std::min<int64_t>(kMaxDotRows, n_act - k0));
            for (int k = 0; k < m; ++k) ptrs[k] = a + static_cast<size_t>(k0 + k) * ab;
            vec_dot_rows(t, wb + static_cast<size_t>(r) * rb, ptrs, m, n, out);
            for (int k = 0; k < m; ++k) y[(k0 + k) * ldy + r] = out[k];
        }
}

void vec_dot_x4(quant::Type t, const void *w, const void *const act[4], int64_t n, float out[4]) {
    vec_dot_rows(t, w, act, 4, n, out);
}

float vec_dot_generic(quant::Type t, const void *w, const void *act, int64_t n) {
    float out;
    vec_dot_generic_rows(t, w, &act, 1, n, &out);
    return out;
}

void vec_dot_generic_rows(quant::Type t, const void *w, const void *const *act, int n_act, int64_t n,
                          float *out) {
    using T = quant::Type;
    for (; n_act > kMaxDotRows; n_act -= kMaxDotRows, act += kMaxDotRows, out += kMaxDotRows)
        vec_dot_generic_rows(t, w, act, kMaxDotRows, n, out);
    switch (t) {
        case T::F32:
            for (int k = 0; k < n_act; ++k) out[k] = row_dot_f32(w, act[k], n);
            return;
        case T::F16:
            for (int k = 0; k < n_act; ++k) out[k] = row_dot_half<quant::fp16_to_fp32>(w, act[k], n);
            return;
        case T::BF16:
            for (int k = 0; k < n_act; ++k) out[k] = row_dot_half<quant::bf16_to_fp32>(w, act[k], n);
            return;
        case T::Q4_0:
            return rows_dot_legacy<quant::BlockQ4_0, ActQ8_0>(w, act, n_act, n, out);
        case T::Q4_1:
            return rows_dot_legacy<quant::BlockQ4_1, ActQ8_1>(w, act, n_act, n, out);
        case T::Q5_0:
            return rows_dot_legacy<quant::BlockQ5_0, ActQ8_0>(w, act, n_act, n, out);
        case T::Q5_1:
            return rows_dot_legacy<quant::BlockQ5_1, ActQ8_1>(w, act, n_act, n, out);
        case T::Q8_0:
            return rows_dot_legacy<quant::BlockQ8_0, ActQ8_0>(w, act, n_act, n, out);
        case T::Q2_K:
            return rows_dot_k<quant::BlockQ2_K>(w, act, n_act, n, out);
        case T::Q3_K:
            return rows_dot_k<quant::BlockQ3_K>(w, act, n_act, n, out);
        case T::Q4_K:
            return rows_dot_k<quant::BlockQ4_K>(w, act, n_act, n, out);
        case T::Q5_K:
            return rows_dot_k<quant::BlockQ5_K>(w, act, n_act, n, out);
        case T::Q6_K:
            return rows_dot_k<quant::BlockQ6_K>(w, act, n_act, n, out);
        case T::IQ4_NL:
            return rows_dot_legacy<quant::BlockIQ4_NL, ActQ8_0>(w, act, n_act, n, out);
        case T::IQ4_XS:
            return rows_dot_k<quant::BlockIQ4_XS>(w, act, n_act, n, out);
        default:
            throw std::invalid_argument("vec_dot: no kernel for " + std::string(quant::type_name(t)));
    }
}

}  // namespace moerun::kernels::cpu

// AVX2 versions of the vec-dot kernels of the super-block types (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS
// against int8 activations; the 32-element types are in lanes-32-avx2.cpp), each for 1 and 4
// activation rows per pass over a weight row (a block unpacked once for the 4; per row the same operations
// either way). Same definition as the generic kernels in vec-dot.cpp (exact integer sums per block, float
// scaling per block); selected at run time when the CPU has AVX2 and FMA.
#include "vec-dot-impl.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "avx2-unpack.h"
#include "moerun/quant/blocks.h"

#define MOERUN_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace moerun::kernels::cpu::avx2 {
namespace {

MOERUN_AVX2 inline float half(uint16_t h) {
    return _cvtsh_ss(h);
}

// The total of v's 8 int32 lanes in lane 0 (integer adds: any order is exact).
MOERUN_AVX2 inline __m128i sum_lanes(__m256i v) {
    __m128i h = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    h = _mm_hadd_epi32(h, h);
    return _mm_hadd_epi32(h, h);
}

}  // namespace

// The 16 int16 scales of a super-block with sub-blocks of 16 (sc16 word j: sub-block j) as the
// 8 registers that multiply the pair sums of 32 elements: s[r] = sub-block 2r's scale in the low
// 128-bit lane, 2r + 1's in the high lane (the lanes of q[r]).
MOERUN_AVX2 inline void scales_by_pair(__m256i sc16, __m256i s[8]) {
    // even words to the low lane, odd words to the high lane
    const __m256i deint = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15, 0, 1, 4, 5,
                                           8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
    const __m256i x = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(sc16, deint), 0xD8);
    for (int r = 0; r < 8; ++r)
        s[r] = _mm256_shuffle_epi8(x, _mm256_set1_epi16(static_cast<int16_t>(0x0100 * (2 * r + 1) + 2 * r)));
}

// The 8 six-bit scales and mins of a Q4_K/Q5_K block as 8 int16 each (k4_scale_words).
MOERUN_AVX2 inline void k4_scales_mins(const uint8_t *scales, __m128i &sc, __m128i &mn) {
    const K4ScaleWords k = k4_scale_words(scales);
    sc = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, static_cast<int>(k.sc_hi), static_cast<int>(k.sc_lo)));
    mn = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, static_cast<int>(k.m_hi), static_cast<int>(k.m_lo)));
}

// Q4_K / Q5_K, N activation rows: the quants of sub-block j as u8 (k4_unpack_u8) x s8, pairs summed
// to int16 (exact), times the sub-block scale to int32 (exact); the mins through
// the activation's sub-block sums. Each block is unpacked once for all rows. Per super-block the
// exact totals I (scales) and M (mins), then acc = fma(fl(d * dy), float(I), acc), acc_m =
// fma(fl(dmin * dy), float(M), acc_m), result acc - acc_m: the steps of the 8-row prefill kernel
// (lanes-k-avx2.cpp) and of the AVX-512 kernels, so all give the same bits whatever N is.
template <class B, int N>
MOERUN_AVX2 void k4_rows(const void *w, const void *const *act, int64_t n, float *out) {
    const auto *x = static_cast<const B *>(w);
    const ActQ8_K *y[N];
    for (int t = 0; t < N; ++t) y[t] = static_cast<const ActQ8_K *>(act[t]);
    __m128 acc[N];  // lanes 0, 1: acc, acc_m
    for (int t = 0; t < N; ++t) acc[t] = _mm_setzero_ps();
    alignas(16) int16_t sc[8];
    for (int64_t i = 0; i < n / 256; ++i) {
        __m128i sc16, mn16;
        k4_scales_mins(x[i].scales, sc16, mn16);
        _mm_store_si128(reinterpret_cast<__m128i *>(sc), sc16);
        __m256i q[8];  // sub-block j in q[j]
        k4_unpack_u8(x[i], q);
        const __m128 dxm = _mm_cvtph_ps(
            _mm_cvtsi32_si128(static_cast<int>(x[i].d | static_cast<uint32_t>(x[i].dmin) << 16)));
        for (int t = 0; t < N; ++t) {
            const ActQ8_K &yb = y[t][i];
            // sum of mins * (sums of y over each 32-element sub-block)
            const __m128i b0 = _mm_loadu_si128(reinterpret_cast<const __m128i *>(yb.bsums));
            const __m128i b1 = _mm_loadu_si128(reinterpret_cast<const __m128i *>(yb.bsums + 8));
            const __m128i msum = _mm_madd_epi16(mn16, _mm_hadd_epi16(b0, b1));  // 4 int32
            __m256i isum = _mm256_setzero_si256();
            for (int j = 0; j < 8; ++j) {
                const __m256i yv = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(yb.qs + 32 * j));
                isum = _mm256_add_epi32(
                    isum, _mm256_madd_epi16(_mm256_maddubs_epi16(q[j], yv), _mm256_set1_epi16(sc[j])));
            }
            // lanes 0, 1: the exact totals I, M (integer adds: any order is exact)
            __m128i h = _mm_hadd_epi32(
                _mm_add_epi32(_mm256_castsi256_si128(isum), _mm256_extracti128_si256(isum, 1)), msum);
            h = _mm_hadd_epi32(h, h);
            acc[t] = _mm_fmadd_ps(_mm_mul_ps(dxm, _mm_set1_ps(yb.d)), _mm_cvtepi32_ps(h), acc[t]);
        }
    }
    for (int t = 0; t < N; ++t) out[t] = _mm_cvtss_f32(acc[t]) - _mm_cvtss_f32(_mm_movehdup_ps(acc[t]));
}

// Q6_K, N activation rows: register (h, s) holds the 6-bit quants 0..63 (u8) of elements 128h + 32s
// .. + 31 (its low 128-bit lane is sub-block 8h + 2s, the high lane the next) x s8 to int16, times
// the sub-block scale to int32 (exact); the -32 of every quant goes through the activation's
// 16-element sums, lane-wise. Per super-block the exact total I, then acc = fma(fl(d * dy),
// float(I), acc): the steps of the 8-row prefill kernel (lanes-k-avx2.cpp) and of the AVX-512
// kernels, so all give the same bits.
template <int N>
MOERUN_AVX2 void q6_k_rows(const void *w, const void *const *act, int64_t n, float *out) {
    const auto *x = static_cast<const quant::BlockQ6_K *>(w);
    const ActQ8_K *y[N];
    for (int t = 0; t < N; ++t) y[t] = static_cast<const ActQ8_K *>(act[t]);
    __m128 acc[N];  // lane 0
    for (int t = 0; t < N; ++t) acc[t] = _mm_setzero_ps();
    for (int64_t i = 0; i < n / 256; ++i) {
        const __m256i sc16 =
            _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i *>(x[i].scales)));
        __m256i q[8], s[8];  // register 4h + s
        for (int h = 0; h < 2; ++h) q6_k_unpack_half(x[i], h, q + 4 * h);
        scales_by_pair(sc16, s);
        const __m128 dx = _mm_set_ss(half(x[i].d));
        for (int t = 0; t < N; ++t) {
            const ActQ8_K &yb = y[t][i];
            const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(yb.bsums));
            __m256i isum = _mm256_setzero_si256();
            for (int r = 0; r < 8; ++r) {
                const __m256i yv = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(yb.qs + 32 * r));
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(_mm256_maddubs_epi16(q[r], yv), s[r]));
            }
            isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 5));
            acc[t] = _mm_fmadd_ss(_mm_mul_ss(dx, _mm_set_ss(yb.d)), _mm_cvtepi32_ps(sum_lanes(isum)), acc[t]);
        }
    }
    for (int t = 0; t < N; ++t) out[t] = _mm_cvtss_f32(acc[t]);
}

// IQ4_XS, N activation rows: sub-block ib's 32 values (iq4_xs_unpack) x y as |w| (u8) x y negated
// where w < 0 (s8), pairs to int16 (|sum| <= 2 * 127 * 127, exact), times the sub-block scale ls - 32
// to int32 (exact). Per super-block the exact total I, then acc = fma(fl(d * dy), float(I), acc): the
// steps of the 8-row prefill kernel (lanes-k-avx2.cpp) and of the AVX-512 kernels, so all give the
// same bits.
template <int N>
MOERUN_AVX2 void iq4_xs_rows(const void *w, const void *const *act, int64_t n, float *out) {
    const auto *x = static_cast<const quant::BlockIQ4_XS *>(w);
    const ActQ8_K *y[N];
    for (int t = 0; t < N; ++t) y[t] = static_cast<const ActQ8_K *>(act[t]);
    __m128 acc[N];  // lane 0
    for (int t = 0; t < N; ++t) acc[t] = _mm_setzero_ps();
    for (int64_t i = 0; i < n / 256; ++i) {
        __m256i v[8];
        __m128i sc16;
        iq4_xs_unpack(x[i], v, sc16);
        alignas(16) int16_t sc[8];
        _mm_store_si128(reinterpret_cast<__m128i *>(sc), sc16);
        __m256i isum[N];
        for (int t = 0; t < N; ++t) isum[t] = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ++ib) {
            const __m256i ax = _mm256_sign_epi8(v[ib], v[ib]), s = _mm256_set1_epi16(sc[ib]);
            for (int t = 0; t < N; ++t) {
                const __m256i yv =
                    _mm256_loadu_si256(reinterpret_cast<const __m256i *>(y[t][i].qs + 32 * ib));
                isum[t] = _mm256_add_epi32(
                    isum[t], _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(yv, v[ib])), s));
            }
        }
        const __m128 dx = _mm_set_ss(half(x[i].d));
        for (int t = 0; t < N; ++t) {
            acc[t] = _mm_fmadd_ss(_mm_mul_ss(dx, _mm_set_ss(y[t][i].d)), _mm_cvtepi32_ps(sum_lanes(isum[t])),
                                  acc[t]);
        }
    }
    for (int t = 0; t < N; ++t) out[t] = _mm_cvtss_f32(acc[t]);
}

// Q2_K / Q3_K, N activation rows: 16 sub-blocks of 16, the quants unpacked unsigned (k2_unpack_u8);
// register r's low 128-bit lane is sub-block 2r, the high lane the next. u8 x s8 pairs to int16
// (exact), times the sub-block scale to int32 (exact); Q2_K's mins and Q3_K's -4 through the
// activation's 16-element sums. Per super-block the exact totals I (Q3_K: the -4 folded in) and M
// (Q2_K's mins), then acc = fma(fl(d * dy), float(I), acc), acc_m = fma(fl(dmin * dy), float(M),
// acc_m), result acc - acc_m (Q3_K: acc): the steps of the 8-row prefill kernel (lanes-k-avx2.cpp)
// and of the AVX-512 kernels, so all give the same bits.
template <class B, int N>
MOERUN_AVX2 void k2_rows(const void *w, const void *const *act, int64_t n, float *out) {
    constexpr bool three = std::is_same_v<B, quant::BlockQ3_K>;
    const auto *x = static_cast<const B *>(w);
    const ActQ8_K *y[N];
    for (int t = 0; t < N; ++t) y[t] = static_cast<const ActQ8_K *>(act[t]);
    __m128 acc[N];  // lanes 0, 1: acc, acc_m
    for (int t = 0; t < N; ++t) acc[t] = _mm_setzero_ps();
    for (int64_t i = 0; i < n / 256; ++i) {
        __m256i q[8], s[8], sc16, mn16;
        k2_unpack_u8(x[i], q, sc16, mn16);
        scales_by_pair(sc16, s);
        uint32_t dbits = x[i].d;
        if constexpr (!three) dbits |= static_cast<uint32_t>(x[i].dmin) << 16;
        const __m128 dxm = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(dbits)));
        for (int t = 0; t < N; ++t) {
            const ActQ8_K &yb = y[t][i];
            const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(yb.bsums));
            __m256i isum = _mm256_setzero_si256(), msum = _mm256_setzero_si256();
            for (int r = 0; r < 8; ++r) {
                const __m256i yv = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(yb.qs + 32 * r));
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(_mm256_maddubs_epi16(q[r], yv), s[r]));
            }
            if constexpr (three)  // the -4 of every quant: 4 * sum_j sc[j] * bsums[j], lane-wise
                isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 2));
            else
                msum = _mm256_madd_epi16(mn16, bs);
            // lanes 0, 1: the exact totals I, M (integer adds: any order is exact)
            const __m256i h8 = _mm256_hadd_epi32(isum, msum);
            __m128i h = _mm_add_epi32(_mm256_castsi256_si128(h8), _mm256_extracti128_si256(h8, 1));
            h = _mm_hadd_epi32(h, h);
            acc[t] = _mm_fmadd_ps(_mm_mul_ps(dxm, _mm_set1_ps(yb.d)), _mm_cvtepi32_ps(h), acc[t]);
        }
    }
    for (int t = 0; t < N; ++t) {
        out[t] = _mm_cvtss_f32(acc[t]);
        if constexpr (!three) out[t] -= _mm_cvtss_f32(_mm_movehdup_ps(acc[t]));
    }
}

// dot_<name> (one activation row) and dot_<name>_x4 (four rows) from the N-row kernel
// kernel<targs..., N>.
#define MOERUN_AVX2_ENTRIES(name, kernel, ...)                                                           \
    MOERUN_AVX2 float dot_##name(const void *w, const void *act, int64_t n) {                            \
        float out;                                                                                       \
        kernel<__VA_ARGS__ 1>(w, &act, n, &out);                                                         \
        return out;                                                                                      \
    }                                                                                                    \
    MOERUN_AVX2 void dot_##name##_x4(const void *w, const void *const act[4], int64_t n, float out[4]) { \
        kernel<__VA_ARGS__ 4>(w, act, n, out);                                                           \
    }
MOERUN_AVX2_ENTRIES(q4_k, k4_rows, quant::BlockQ4_K, )
MOERUN_AVX2_ENTRIES(q5_k, k4_rows, quant::BlockQ5_K, )
MOERUN_AVX2_ENTRIES(q6_k, q6_k_rows)
MOERUN_AVX2_ENTRIES(iq4_xs, iq4_xs_rows)
MOERUN_AVX2_ENTRIES(q2_k, k2_rows, quant::BlockQ2_K, )
MOERUN_AVX2_ENTRIES(q3_k, k2_rows, quant::BlockQ3_K, )
#undef MOERUN_AVX2_ENTRIES

bool supported() {
    // clang has no "f16c" for __builtin_cpu_supports: read CPUID leaf 1, ECX bit 29, directly.
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
    return f16c && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

}  // namespace moerun::kernels::cpu::avx2

#else
namespace moerun::kernels::cpu::avx2 {
bool supported() {
    return false;
}
float dot_q4_k(const void *, const void *, int64_t) {
    return 0;
}
float dot_q6_k(const void *, const void *, int64_t) {
    return 0;
}
float dot_q5_k(const void *, const void *, int64_t) {
    return 0;
}
void dot_q5_k_x4(const void *, const void *const[4], int64_t, float[4]) {}
float dot_iq4_xs(const void *, const void *, int64_t) {
    return 0;
}
void dot_iq4_xs_x4(const void *, const void *const[4], int64_t, float[4]) {}
float dot_q2_k(const void *, const void *, int64_t) {
    return 0;
}
void dot_q2_k_x4(const void *, const void *const[4], int64_t, float[4]) {}
float dot_q3_k(const void *, const void *, int64_t) {
    return 0;
}
void dot_q3_k_x4(const void *, const void *const[4], int64_t, float[4]) {}
void dot_q6_k_x4(const void *, const void *const[4], int64_t, float[4]) {}
}  // namespace moerun::kernels::cpu::avx2
#endif

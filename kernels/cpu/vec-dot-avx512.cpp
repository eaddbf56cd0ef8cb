// AVX-512 (F, BW, VL, VNNI) versions of the vec-dot kernels of the super-block types (Q2_K, Q3_K,
// Q4_K, Q5_K, Q6_K, IQ4_XS) for one weight row (vec_dot, and decode: two rows per pass) and of the
// activation conversion; the 16-row prefill kernels are in lanes-k-avx512.cpp, the 32-element types
// (Q8_0, Q4_0, Q5_0, IQ4_NL) in lanes-avx512.cpp. Same definition as the generic kernels in
// vec-dot.cpp: exact integer sums per (sub-)block, float scaling per block. Per super-block each
// kernel first reduces its integer sums to exact int32 totals, then takes the same float steps as
// the 16-row kernels, so a row's result is the same bits whichever kernel computes it (one row,
// two rows, a tile; any number of activation rows).
#include "vec-dot-impl.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "avx2-unpack.h"
#include "avx512-target.h"
#include "lanes-avx512.h"
#include "moerun/quant/blocks.h"

#include "moerun/quant/half.h"

namespace moerun::kernels::cpu::avx512 {
namespace {

// Bytes ahead of the current weight block that rows<U, N> prefetches for one or two tokens (a lone
// row: vec_dot, or the last of an odd count in decode, where two-row passes prefetch the next pair
// instead; measured +4-5% tg on the OLMoE shape, 2 threads, when Q4_K decode ran one row at a time).
constexpr int kPrefetchAhead = 2048;

// The 8 six-bit scales and mins of a Q4_K block as 8 int16 each (k4_scale_words).
MOERUN_AVX512 inline void k4_scales_mins(const uint8_t *scales, __m128i &sc, __m128i &mn) {
    const K4ScaleWords k = k4_scale_words(scales);
    sc = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, static_cast<int>(k.sc_hi), static_cast<int>(k.sc_lo)));
    mn = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, static_cast<int>(k.m_hi), static_cast<int>(k.m_lo)));
}

// Q4_K / Q5_K: 64 elements per zmm (chunk c: low nibbles of qs[32c..] = sub-block 2c, high
// nibbles = sub-block 2c+1; Q5_K adds bit 2c / 2c+1 of qh[l] as bit 4), u8 x s8 pairs summed to
// int16 (maddubs; |sum| <= 2 * 31 * 128, exact), then int16 x sub-block scale pairs accumulated
// to int32 (vpdpwssd, exact). Per super-block the exact integer sums I (scales) and M (mins), then
// the float steps of the 16-row prefill kernel (lanes-k-avx512.cpp), which give the same bits.
template <class B>
struct K4Unpacked {
    __m512i q[4], s[4];  // quants (u8) and sub-block scales (int16) of chunk c
    __m256i mn2;         // mins, each twice (int16)
};

template <class B>
struct K4Consts {
    __m512i m4, shift, sidx[4], hbit[4];  // hbit: Q5_K's qh bit of chunk c, low and high half
    MOERUN_AVX512 K4Consts() {
        m4 = _mm512_set1_epi8(0x0F);
        shift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
        for (int c = 0; c < 4; ++c) {
            sidx[c] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(static_cast<short>(2 * c))),
                                         _mm256_set1_epi16(static_cast<short>(2 * c + 1)), 1);
            hbit[c] =
                _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi8(static_cast<char>(1 << (2 * c)))),
                                   _mm256_set1_epi8(static_cast<char>(1 << (2 * c + 1))), 1);
        }
    }
};

template <class B>
MOERUN_AVX512 inline void k4_unpack(const B &x, const K4Consts<B> &k, K4Unpacked<B> &u) {
    constexpr bool five = std::is_same_v<B, quant::BlockQ5_K>;
    __m128i sc16, mn16;
    k4_scales_mins(x.scales, sc16, mn16);
    [[maybe_unused]] __m512i qh = _mm512_setzero_si512();
    if constexpr (five)
        qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(x.qh)));
    for (int c = 0; c < 4; ++c) {
        const __m512i b =
            _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(x.qs + 32 * c)));
        u.q[c] = _mm512_and_si512(_mm512_srlv_epi16(b, k.shift), k.m4);
        if constexpr (five)
            u.q[c] = _mm512_mask_add_epi8(u.q[c], _mm512_test_epi8_mask(qh, k.hbit[c]), u.q[c],
                                          _mm512_set1_epi8(16));
        u.s[c] = _mm512_permutexvar_epi16(k.sidx[c], _mm512_castsi128_si512(sc16));
    }
    // lane j of madd(mn2, bsums) = m[j] * (bsums[2j] + bsums[2j+1]) (exact)
    u.mn2 = _mm256_set_m128i(_mm_unpackhi_epi16(mn16, mn16), _mm_unpacklo_epi16(mn16, mn16));
}

// The integer sums of one super-block against one activation block: isum (16 lanes) adds up to I,
// msum (8 lanes) to M.
template <class B>
MOERUN_AVX512 inline void k4_sums(const K4Unpacked<B> &u, const ActQ8_K &yb, __m512i &isum, __m256i &msum) {
    msum = _mm256_madd_epi16(u.mn2, _mm256_loadu_si256(reinterpret_cast<const __m256i *>(yb.bsums)));
    isum = _mm512_setzero_si512();
    for (int c = 0; c < 4; ++c)
        isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(u.q[c], _mm512_loadu_si512(yb.qs + 64 * c)),
                                   u.s[c]);
}

template <class B>
struct UnitK4 {
    static constexpr bool kMins = true;
    using Block = B;
    using Unpacked = K4Unpacked<B>;
    K4Consts<B> k;
    MOERUN_AVX512 void unpack(const B &x, Unpacked &u) const { k4_unpack(x, k, u); }
    MOERUN_AVX512 void sums(const Unpacked &u, const ActQ8_K &yb, __m512i &isum, __m256i &msum) const {
        k4_sums(u, yb, isum, msum);
    }
};

// Decode's two-row kernels read rows w0 and w1 = w0 + rb: the next pair starts at w1 + rb. The
// pair is one contiguous stream in memory, so its super-block i is prefetched in that order while
// this pair's super-block i is computed (two streams, one per row, read at about half the rate
// from this VM's memory).
inline const char *next_pair(const void *w0, const void *w1) {
    return static_cast<const char *>(w1) + (static_cast<const char *>(w1) - static_cast<const char *>(w0));
}
template <class B>
MOERUN_AVX512 inline void prefetch_pair(const char *next, int64_t i) {
    for (int j = 0; j < 2 * static_cast<int>(sizeof(B)); j += 64)
        _mm_prefetch(next + 2 * i * static_cast<int64_t>(sizeof(B)) + j, _MM_HINT_T0);
}

MOERUN_AVX512 inline __m256i add_halves(__m512i v) {
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

// A unit unpacks a weight super-block once (U::unpack) and sums it against one activation block
// to exact int32 lanes: with U::kMins, U::sums(u, yb, isum, msum) gives isum (16 lanes) adding up
// to I (scales) and msum (8 lanes) to M (mins: Q4_K, Q5_K, Q2_K); without, isum = U::sums(u, yb)
// (IQ4_XS, Q6_K, Q3_K, whose offsets are folded into I).
template <class U>
MOERUN_AVX512 inline void unit_sums(const U &k, const typename U::Unpacked &u, const ActQ8_K &yb,
                                    __m512i &isum, __m256i &msum) {
    if constexpr (U::kMins)
        k.sums(u, yb, isum, msum);
    else
        isum = k.sums(u, yb);
}

// Super-block x of one weight row against N activation rows' block i.
template <class U, int N>
MOERUN_AVX512 inline void block_sums(const typename U::Block *x, const U &k, const ActQ8_K *const *y,
                                     int64_t i, __m512i *isum, __m256i *msum) {
    typename U::Unpacked u;
    k.unpack(*x, u);
    for (int t = 0; t < N; ++t) unit_sums(k, u, y[t][i], isum[t], msum[t]);
}

// Per super-block the exact sums I and M, then acc = fma(fl(d * dy), float(I), acc) and, with
// mins, acc_m = fma(fl(dmin * dy), float(M), acc_m); the result is acc - acc_m: the float steps of
// the 16-row prefill kernels (lanes-k-avx512.cpp), which give the same bits.
// One weight row against N activation rows; acc[t] lanes 0, 1: acc, acc_m.
template <class U, int N>
MOERUN_AVX512 void rows(const void *w, const void *const *act, int64_t n, float *out) {
    const auto *x = static_cast<const typename U::Block *>(w);
    const ActQ8_K *y[N];
    for (int t = 0; t < N; ++t) y[t] = static_cast<const ActQ8_K *>(act[t]);
    const U k;
    __m128 acc[N];
    for (int t = 0; t < N; ++t) acc[t] = _mm_setzero_ps();
    for (int64_t i = 0; i < n / 256; ++i) {
        if constexpr (N <= 2) {  // decode streams weights from memory: fetch ~2 KiB ahead
            const char *ahead = reinterpret_cast<const char *>(x + i) + kPrefetchAhead;
            _mm_prefetch(ahead, _MM_HINT_T0);
            _mm_prefetch(ahead + 64, _MM_HINT_T0);
            _mm_prefetch(ahead + 128, _MM_HINT_T0);
        }
        typename U::Unpacked u;
        k.unpack(x[i], u);
        uint32_t dbits = x[i].d;
        if constexpr (U::kMins) dbits |= static_cast<uint32_t>(x[i].dmin) << 16;
        const __m128 dxm = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(dbits)));
        for (int t = 0; t < N; ++t) {
            __m512i isum;
            __m256i msum = _mm256_setzero_si256();
            unit_sums(k, u, y[t][i], isum, msum);
            // lanes 0, 1: I, M (integer adds: any order is exact)
            const __m256i h8 = _mm256_hadd_epi32(add_halves(isum), msum);
            __m128i h = _mm_add_epi32(_mm256_castsi256_si128(h8), _mm256_extracti128_si256(h8, 1));
            h = _mm_hadd_epi32(h, h);
            acc[t] = _mm_fmadd_ps(_mm_mul_ps(dxm, _mm_set1_ps(y[t][i].d)), _mm_cvtepi32_ps(h), acc[t]);
        }
    }
    for (int t = 0; t < N; ++t) {
        out[t] = _mm_cvtss_f32(acc[t]);
        if constexpr (U::kMins) out[t] -= _mm_cvtss_f32(_mm_movehdup_ps(acc[t]));
    }
}

// Two weight rows (decode: twice the independent work per pass, one reduction for both) against N
// activation rows, the next pair prefetched as one stream; acc[t] lanes 0..3: acc of row 0, of
// row 1, acc_m of row 0, of row 1.
template <class U, int N>
MOERUN_AVX512 void rows2(const void *w0, const void *w1, const void *const *act, int64_t n, float *out0,
                         float *out1) {
    using B = typename U::Block;
    const B *x[2] = {static_cast<const B *>(w0), static_cast<const B *>(w1)};
    const ActQ8_K *y[N];
    for (int t = 0; t < N; ++t) y[t] = static_cast<const ActQ8_K *>(act[t]);
    const U k;
    __m128 acc[N];
    for (int t = 0; t < N; ++t) acc[t] = _mm_setzero_ps();
    const char *next = next_pair(w0, w1);
    for (int64_t i = 0; i < n / 256; ++i) {
        prefetch_pair<B>(next, i);
        __m512i isum[2][N];
        __m256i msum[2][N];
        block_sums<U, N>(x[0] + i, k, y, i, isum[0], msum[0]);  // one row unpacked at a time (registers)
        block_sums<U, N>(x[1] + i, k, y, i, isum[1], msum[1]);
        uint64_t dbits = x[0][i].d | static_cast<uint64_t>(x[1][i].d) << 16;
        if constexpr (U::kMins)
            dbits |= static_cast<uint64_t>(x[0][i].dmin) << 32 | static_cast<uint64_t>(x[1][i].dmin) << 48;
        const __m128 dxm = _mm_cvtph_ps(_mm_cvtsi64_si128(static_cast<long long>(dbits)));
        for (int t = 0; t < N; ++t) {
            // lanes 0..3: I of row 0, I of row 1, then M of rows 0, 1 (without mins: I of rows 0, 1
            // again, times a zero scale)
            __m256i h8 = _mm256_hadd_epi32(add_halves(isum[0][t]), add_halves(isum[1][t]));
            if constexpr (U::kMins) h8 = _mm256_hadd_epi32(h8, _mm256_hadd_epi32(msum[0][t], msum[1][t]));
            __m128i h = _mm_add_epi32(_mm256_castsi256_si128(h8), _mm256_extracti128_si256(h8, 1));
            if constexpr (!U::kMins) h = _mm_hadd_epi32(h, h);
            acc[t] = _mm_fmadd_ps(_mm_mul_ps(dxm, _mm_set1_ps(y[t][i].d)), _mm_cvtepi32_ps(h), acc[t]);
        }
    }
    for (int t = 0; t < N; ++t) {
        out0[t] = _mm_cvtss_f32(acc[t]);
        out1[t] = _mm_cvtss_f32(_mm_movehdup_ps(acc[t]));
        if constexpr (U::kMins) {
            const __m128 hi = _mm_movehl_ps(acc[t], acc[t]);  // acc_m of rows 0, 1
            out0[t] -= _mm_cvtss_f32(hi);
            out1[t] -= _mm_cvtss_f32(_mm_movehdup_ps(hi));
        }
    }
}

// kIQ4Values in every 128-bit lane (vpshufb looks up within lanes).
MOERUN_AVX512 inline __m512i iq4_table() {
    return _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i *>(quant::kIQ4Values)));
}

// IQ4_XS: zmm c holds sub-blocks 2c and 2c+1 (elements 64c..64c+63): its 128-bit lanes are the
// low nibbles of qs[32c..32c+16), their high nibbles, then the same for qs[32c+16..32c+32); the
// nibbles pick kIQ4Values (vpshufb). Signed x signed as |w| (u8) x y negated where w < 0 (s8),
// pairs summed to int16 (maddubs; |sum| <= 2 * 127 * 127, exact), then int16 x sub-block scale
// (ls - 32) pairs accumulated to int32 (vpdpwssd, exact).
struct UnitIQ4XS {
    static constexpr bool kMins = false;
    using Block = quant::BlockIQ4_XS;
    struct Unpacked {
        __m512i ax[4], s[4];
        __mmask64 neg[4];
    };
    __m512i table, m4, shift, sidx[4];
    MOERUN_AVX512 UnitIQ4XS() {
        table = iq4_table();
        m4 = _mm512_set1_epi8(0x0F);
        const int64_t four = 0x0004000400040004;  // shift the 2nd and 4th 128-bit lanes by 4
        shift = _mm512_set_epi64(four, four, 0, 0, four, four, 0, 0);
        for (int c = 0; c < 4; ++c)
            sidx[c] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(static_cast<short>(2 * c))),
                                         _mm256_set1_epi16(static_cast<short>(2 * c + 1)), 1);
    }
    MOERUN_AVX512 void unpack(const Block &x, Unpacked &u) const {
        const __m128i sc16 = _mm_sub_epi16(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(
                                               iq4_xs_scale_bytes(x.scales_l, x.scales_h)))),
                                           _mm_set1_epi16(32));
        for (int c = 0; c < 4; ++c) {
            const __m512i b =
                _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(x.qs + 32 * c)));
            const __m512i idx =
                _mm512_and_si512(_mm512_srlv_epi16(_mm512_shuffle_i64x2(b, b, 0x50), shift), m4);
            const __m512i v = _mm512_shuffle_epi8(table, idx);
            u.ax[c] = _mm512_abs_epi8(v);
            u.neg[c] = _mm512_movepi8_mask(v);
            u.s[c] = _mm512_permutexvar_epi16(sidx[c], _mm512_castsi128_si512(sc16));
        }
    }
    MOERUN_AVX512 __m512i sums(const Unpacked &u, const ActQ8_K &yb) const {
        __m512i isum = _mm512_setzero_si512();
        for (int c = 0; c < 4; ++c) {
            const __m512i yv = _mm512_loadu_si512(yb.qs + 64 * c);
            const __m512i sy = _mm512_mask_sub_epi8(yv, u.neg[c], _mm512_setzero_si512(), yv);
            isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(u.ax[c], sy), u.s[c]);
        }
        return isum;
    }
};

// Q6_K: 6-bit quants 0..63 (u8) x s8, 32 elements per ymm half; the -32 offset of every quant is
// applied once per block through the activation's 16-element sums:
// I = sum_j sc_j * sum(q * y) - 32 * sum_j sc_j * bsum_j.
struct UnitQ6K {
    static constexpr bool kMins = false;
    using Block = quant::BlockQ6_K;
    struct Unpacked {
        __m512i q[4], s[4];  // zmm j: elements 64j..64j+63 (u8) and their sub-block scales (int16)
        __m256i sc16;        // the 16 scales (int16)
    };
    __m512i sidx[4];  // zmm j: int16 lane l belongs to sub-block 4j + l / 8
    MOERUN_AVX512 UnitQ6K() {
        const __m512i lane = _mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16,
                                              15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
        for (int j = 0; j < 4; ++j)
            sidx[j] =
                _mm512_add_epi16(_mm512_set1_epi16(static_cast<short>(4 * j)), _mm512_srli_epi16(lane, 3));
    }
    MOERUN_AVX512 void unpack(const Block &x, Unpacked &u) const {
        u.sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i *>(x.scales)));
        for (int h = 0; h < 2; ++h) {
            __m256i v[4];
            q6_k_unpack_half(x, h, v);
            u.q[2 * h] = _mm512_inserti64x4(_mm512_castsi256_si512(v[0]), v[1], 1);
            u.q[2 * h + 1] = _mm512_inserti64x4(_mm512_castsi256_si512(v[2]), v[3], 1);
        }
        const __m512i sc = _mm512_zextsi256_si512(u.sc16);
        for (int j = 0; j < 4; ++j) u.s[j] = _mm512_permutexvar_epi16(sidx[j], sc);
    }
    MOERUN_AVX512 __m512i sums(const Unpacked &u, const ActQ8_K &yb) const {
        const __m256i off =
            _mm256_madd_epi16(u.sc16, _mm256_loadu_si256(reinterpret_cast<const __m256i *>(yb.bsums)));
        __m512i isum = _mm512_setzero_si512();
        for (int j = 0; j < 4; ++j)
            isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(u.q[j], _mm512_loadu_si512(yb.qs + 64 * j)),
                                       u.s[j]);
        // - 32 * offset lane-wise (exact int32: each lane gets its own part)
        return _mm512_sub_epi32(isum, _mm512_zextsi256_si512(_mm256_slli_epi32(off, 5)));
    }
};

// Q2_K / Q3_K: 16 sub-blocks of 16; element 128h + 32s + l is bits 2s..2s+1 of qs[32h + l]
// (Q3_K: plus bit 4h + s of hmask[l] as bit 2, and the quant is that 3-bit value - 4). zmm j
// holds elements 64j..64j+63 (h = j / 2, s = 2 (j % 2) and 2 (j % 2) + 1), unsigned (0..3, or
// 0..7), u8 x s8 pairs summed to int16 (maddubs; |sum| <= 2 * 7 * 128), times the sub-block
// scale to int32 (vpdpwssd, exact). Q2_K's mins and Q3_K's -4 go through the activation's
// 16-element sums.
template <class B>
struct UnitK2 {
    static constexpr bool three = std::is_same_v<B, quant::BlockQ3_K>;
    static constexpr bool kMins = !three;
    using Block = B;
    struct Unpacked {
        __m512i q[4], s[4];
        __m256i sc16, mn16;  // 16 int16 scales (Q3_K: - 32) and Q2_K's 16 mins
    };
    __m512i m2, shift[2], sidx[4], hbit[4];
    MOERUN_AVX512 UnitK2() {
        m2 = _mm512_set1_epi8(3);
        for (int p = 0; p < 2; ++p)  // zmm j: shift 4 (j % 2) in the low half, 4 (j % 2) + 2 in the high
            shift[p] =
                _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(static_cast<short>(4 * p))),
                                   _mm256_set1_epi16(static_cast<short>(4 * p + 2)), 1);
        const __m512i lane = _mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16,
                                              15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
        for (int j = 0; j < 4; ++j) {  // int16 lane l of zmm j belongs to sub-block 4j + l / 8
            sidx[j] =
                _mm512_add_epi16(_mm512_set1_epi16(static_cast<short>(4 * j)), _mm512_srli_epi16(lane, 3));
            const int b0 = 4 * (j / 2) + 2 * (j % 2);  // hmask bit of the low half; b0 + 1: high half
            hbit[j] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi8(static_cast<char>(1 << b0))),
                                         _mm256_set1_epi8(static_cast<char>(1 << (b0 + 1))), 1);
        }
    }
    MOERUN_AVX512 void unpack(const B &x, Unpacked &u) const {
        if constexpr (three) {
            uint32_t wd[4];  // in registers: a 16-byte load of 4-byte stores would stall forwarding
            q3_k_scale_words(x.scales, wd);
            const __m128i b = _mm_set_epi32(static_cast<int>(wd[3]), static_cast<int>(wd[2]),
                                            static_cast<int>(wd[1]), static_cast<int>(wd[0]));
            u.sc16 = _mm256_sub_epi16(_mm256_cvtepu8_epi16(b), _mm256_set1_epi16(32));
        } else {
            const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i *>(x.scales));
            u.sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(b, _mm_set1_epi8(0x0F)));
            u.mn16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi8(0x0F)));
        }
        [[maybe_unused]] __m512i hm = _mm512_setzero_si512();
        if constexpr (three)
            hm = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(x.hmask)));
        for (int j = 0; j < 4; ++j) {
            const __m512i b = _mm512_broadcast_i64x4(
                _mm256_loadu_si256(reinterpret_cast<const __m256i *>(x.qs + 32 * (j / 2))));
            u.q[j] = _mm512_and_si512(_mm512_srlv_epi16(b, shift[j % 2]), m2);
            if constexpr (three)
                u.q[j] = _mm512_mask_add_epi8(u.q[j], _mm512_test_epi8_mask(hm, hbit[j]), u.q[j],
                                              _mm512_set1_epi8(4));
            u.s[j] = _mm512_permutexvar_epi16(sidx[j], _mm512_zextsi256_si512(u.sc16));
        }
    }
    MOERUN_AVX512 __m512i scale_sums(const Unpacked &u, const ActQ8_K &yb) const {
        __m512i isum = _mm512_setzero_si512();
        for (int j = 0; j < 4; ++j)
            isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(u.q[j], _mm512_loadu_si512(yb.qs + 64 * j)),
                                       u.s[j]);
        return isum;
    }
    // Q3_K (one sum): the -4 of every quant as 4 * sum_j sc[j] * bsums[j], lane-wise.
    MOERUN_AVX512 __m512i sums(const Unpacked &u, const ActQ8_K &yb) const {
        const __m256i off =
            _mm256_madd_epi16(u.sc16, _mm256_loadu_si256(reinterpret_cast<const __m256i *>(yb.bsums)));
        return _mm512_sub_epi32(scale_sums(u, yb), _mm512_zextsi256_si512(_mm256_slli_epi32(off, 2)));
    }
    // Q2_K (scales and mins): lane j of msum = m[2j] bsums[2j] + m[2j+1] bsums[2j+1].
    MOERUN_AVX512 void sums(const Unpacked &u, const ActQ8_K &yb, __m512i &isum, __m256i &msum) const {
        msum = _mm256_madd_epi16(u.mn16, _mm256_loadu_si256(reinterpret_cast<const __m256i *>(yb.bsums)));
        isum = scale_sums(u, yb);
    }
};

// rows<U, N> and rows2<U, N> as types, for the tile loops below.
template <class U>
struct Row {
    template <int N>
    struct K {
        MOERUN_AVX512 static void run(const void *w, const void *const *a, int64_t n, float *o) {
            rows<U, N>(w, a, n, o);
        }
    };
};
template <class U>
struct Pair {
    template <int N>
    struct K {
        MOERUN_AVX512 static void run(const void *w0, const void *w1, const void *const *a, int64_t n,
                                      float *o0, float *o1) {
            rows2<U, N>(w0, w1, a, n, o0, o1);
        }
    };
};

// One weight row against n_act (1..kMaxDotRows) activation rows.
static_assert(kMaxDotRows == 8);
template <template <int> class K>
MOERUN_AVX512 void rows_n(const void *w, const void *const *act, int n_act, int64_t n, float *out) {
    switch (n_act) {
        case 1:
            return K<1>::run(w, act, n, out);
        case 2:
            return K<2>::run(w, act, n, out);
        case 3:
            return K<3>::run(w, act, n, out);
        case 4:
            return K<4>::run(w, act, n, out);
        case 5:
            return K<5>::run(w, act, n, out);
        case 6:
            return K<6>::run(w, act, n, out);
        case 7:
            return K<7>::run(w, act, n, out);
        default:
            return K<8>::run(w, act, n, out);
    }
}

// Rows [0, n_rows) x activations [0, n_act) with one kernel family: activation rows in groups of
// kMaxDotRows (a group stays in L1 while the weight rows pass by), then one call of the
// remainder's size (the same kernel instances as dot_rows).
template <template <int> class K>
MOERUN_AVX512 void tile(const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *act, size_t ab,
                        int64_t n_act, int64_t n, float *y, int64_t ldy) {
    const void *ptrs[kMaxDotRows];
    float out[kMaxDotRows];
    for (int64_t t = 0; t < n_act; t += kMaxDotRows) {
        const int m = static_cast<int>(n_act - t < kMaxDotRows ? n_act - t : kMaxDotRows);
        for (int k = 0; k < m; ++k) ptrs[k] = act + static_cast<size_t>(t + k) * ab;
        for (int64_t r = 0; r < n_rows; ++r) {
            rows_n<K>(w + static_cast<size_t>(r) * rb, ptrs, m, n, out);
            for (int k = 0; k < m; ++k) y[(t + k) * ldy + r] = out[k];
        }
    }
}

// Decode tiles (one or two activation rows): weight rows in pairs through Pair<N>::run, a last odd
// row through Row<N>::run.
static_assert(lanes::kMinPanelTok == 3, "decode_tile takes the one or two activation rows below a panel");
template <template <int> class Pair, template <int> class Row>
MOERUN_AVX512 void decode_tile(const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *act, size_t ab,
                               int64_t n_act, int64_t n, float *y, int64_t ldy) {
    const void *a[2] = {act, act + (n_act > 1 ? ab : 0)};
    float o0[2], o1[2];
    int64_t r = 0;
    for (; r + 1 < n_rows; r += 2) {
        const uint8_t *row = w + static_cast<size_t>(r) * rb;
        if (n_act == 2)
            Pair<2>::run(row, row + rb, a, n, o0, o1);
        else
            Pair<1>::run(row, row + rb, a, n, o0, o1);
        for (int t = 0; t < n_act; ++t) {
            y[t * ldy + r] = o0[t];
            y[t * ldy + r + 1] = o1[t];
        }
    }
    if (r < n_rows) {
        const uint8_t *row = w + static_cast<size_t>(r) * rb;
        if (n_act == 2)
            Row<2>::run(row, a, n, o0);
        else
            Row<1>::run(row, a, n, o0);
        for (int t = 0; t < n_act; ++t) y[t * ldy + r] = o0[t];
    }
}

// A super-block type's tile: decode kernels below lanes::kMinPanelTok activation rows, else the
// 16-row panels (lanes_k_tile), else (rows too far apart for its gathers) rows of up to
// kMaxDotRows activation rows.
template <class U>
MOERUN_AVX512 void k_tile(quant::Type t, const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *act,
                          size_t ab, int64_t n_act, int64_t n, float *y, int64_t ldy) {
    if (n_act < lanes::kMinPanelTok)
        decode_tile<Pair<U>::template K, Row<U>::template K>(w, rb, n_rows, act, ab, n_act, n, y, ldy);
    else if (!lanes_k_tile(t, w, rb, n_rows, act, ab, n_act, n, y, ldy))
        tile<Row<U>::template K>(w, rb, n_rows, act, ab, n_act, n, y, ldy);
}

}  // namespace

bool dot_rows(quant::Type t, const void *w, const void *const *act, int n_act, int64_t n, float *out) {
    switch (t) {
        case quant::Type::Q4_K:
            rows_n<Row<UnitK4<quant::BlockQ4_K>>::K>(w, act, n_act, n, out);
            return true;
        case quant::Type::Q5_K:
            rows_n<Row<UnitK4<quant::BlockQ5_K>>::K>(w, act, n_act, n, out);
            return true;
        case quant::Type::Q6_K:
            rows_n<Row<UnitQ6K>::K>(w, act, n_act, n, out);
            return true;
        case quant::Type::Q2_K:
            rows_n<Row<UnitK2<quant::BlockQ2_K>>::K>(w, act, n_act, n, out);
            return true;
        case quant::Type::Q3_K:
            rows_n<Row<UnitK2<quant::BlockQ3_K>>::K>(w, act, n_act, n, out);
            return true;
        case quant::Type::IQ4_XS:
            rows_n<Row<UnitIQ4XS>::K>(w, act, n_act, n, out);
            return true;
        case quant::Type::Q8_0:
        case quant::Type::Q4_0:
        case quant::Type::Q5_0:
        case quant::Type::IQ4_NL:
            return lanes_rows(t, w, act, n_act, n, out);
        default:
            return false;
    }
}

bool dot_tile(quant::Type t, const void *w, size_t rb, int64_t n_rows, const void *act, size_t ab,
              int64_t n_act, int64_t n, float *y, int64_t ldy) {
    const auto *wb = static_cast<const uint8_t *>(w);
    const auto *a = static_cast<const uint8_t *>(act);
    switch (t) {
        case quant::Type::Q4_K:
            k_tile<UnitK4<quant::BlockQ4_K>>(t, wb, rb, n_rows, a, ab, n_act, n, y, ldy);
            return true;
        case quant::Type::Q5_K:
            k_tile<UnitK4<quant::BlockQ5_K>>(t, wb, rb, n_rows, a, ab, n_act, n, y, ldy);
            return true;
        case quant::Type::Q6_K:
            k_tile<UnitQ6K>(t, wb, rb, n_rows, a, ab, n_act, n, y, ldy);
            return true;
        case quant::Type::Q2_K:
            k_tile<UnitK2<quant::BlockQ2_K>>(t, wb, rb, n_rows, a, ab, n_act, n, y, ldy);
            return true;
        case quant::Type::Q3_K:
            k_tile<UnitK2<quant::BlockQ3_K>>(t, wb, rb, n_rows, a, ab, n_act, n, y, ldy);
            return true;
        case quant::Type::IQ4_XS:
            k_tile<UnitIQ4XS>(t, wb, rb, n_rows, a, ab, n_act, n, y, ldy);
            return true;
        case quant::Type::Q8_0:
        case quant::Type::Q4_0:
        case quant::Type::Q5_0:
        case quant::Type::IQ4_NL:
            return lanes_tile(t, w, rb, n_rows, act, ab, n_act, n, y, ldy);
        default:
            return false;
    }
}

// ---- activation conversion ----

// Q8_K (see act-quant.cpp): max = the first element of largest magnitude; iscale = -127 / max;
// q = nearest-even(iscale * x) clamped to 127 (cvtps rounds to nearest-even under the default
// MXCSR, as nearbyint does under the default rounding mode).
MOERUN_AVX512 void quantize_q8_k(const float *x, ActQ8_K *y, int64_t nb) {
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    for (int64_t i = 0; i < nb; ++i, x += 256) {
        __m512 vmax = _mm512_setzero_ps();
        for (int j = 0; j < 256; j += 16)
            vmax = _mm512_max_ps(vmax, _mm512_and_ps(_mm512_loadu_ps(x + j), absmask));
        const float amax = _mm512_reduce_max_ps(vmax);
        if (amax == 0) {
            std::memset(&y[i], 0, sizeof(ActQ8_K));
            continue;
        }
        float max = 0;
        for (int j = 0; j < 256; j += 16) {
            const __mmask16 hit = _mm512_cmp_ps_mask(_mm512_and_ps(_mm512_loadu_ps(x + j), absmask),
                                                     _mm512_set1_ps(amax), _CMP_EQ_OQ);
            if (hit) {
                max = x[j + __builtin_ctz(hit)];
                break;
            }
        }
        const float iscale = -127.f / max;
        const __m512 vs = _mm512_set1_ps(iscale);
        const __m512i top = _mm512_set1_epi32(127);
        for (int j = 0; j < 256; j += 16) {
            const __m512i v =
                _mm512_min_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(vs, _mm512_loadu_ps(x + j))), top);
            _mm_storeu_si128(reinterpret_cast<__m128i *>(y[i].qs + j), _mm512_cvtsepi32_epi8(v));
            y[i].bsums[j / 16] = static_cast<int16_t>(_mm512_reduce_add_epi32(v));
        }
        y[i].d = 1 / iscale;
    }
}

// Q8_0: id = 127 / amax, q = nearest-even(x * id), d rounded to fp16 precision.
MOERUN_AVX512 void quantize_q8_0(const float *x, ActQ8_0 *y, int64_t nb) {
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    for (int64_t i = 0; i < nb; ++i, x += 32) {
        const __m512 a = _mm512_loadu_ps(x), b = _mm512_loadu_ps(x + 16);
        const float amax =
            _mm512_reduce_max_ps(_mm512_max_ps(_mm512_and_ps(a, absmask), _mm512_and_ps(b, absmask)));
        const float d = amax / 127.f, id = amax != 0 ? 127.f / amax : 0.f;
        y[i].d = quant::fp16_to_fp32(quant::fp32_to_fp16(d));
        const __m512 vid = _mm512_set1_ps(id);
        const __m512i qa = _mm512_cvtps_epi32(_mm512_mul_ps(a, vid)),
                      qb = _mm512_cvtps_epi32(_mm512_mul_ps(b, vid));
        _mm_storeu_si128(reinterpret_cast<__m128i *>(y[i].qs), _mm512_cvtsepi32_epi8(qa));
        _mm_storeu_si128(reinterpret_cast<__m128i *>(y[i].qs + 16), _mm512_cvtsepi32_epi8(qb));
        y[i].s128 = 128 * _mm512_reduce_add_epi32(_mm512_add_epi32(qa, qb));
    }
}

bool quantize(quant::Type t, const float *x, void *dst, int64_t n) {
    switch (t) {
        case quant::Type::Q4_0:
        case quant::Type::Q5_0:
        case quant::Type::Q8_0:
        case quant::Type::IQ4_NL:
            quantize_q8_0(x, static_cast<ActQ8_0 *>(dst), n / 32);
            return true;
        case quant::Type::Q2_K:
        case quant::Type::Q3_K:
        case quant::Type::Q4_K:
        case quant::Type::Q5_K:
        case quant::Type::Q6_K:
        case quant::Type::IQ4_XS:
            quantize_q8_k(x, static_cast<ActQ8_K *>(dst), n / 256);
            return true;
        default:
            return false;
    }
}

bool supported() {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
    return f16c && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vnni");
}

}  // namespace moerun::kernels::cpu::avx512

#else
namespace moerun::kernels::cpu::avx512 {
bool supported() {
    return false;
}
bool dot_rows(quant::Type, const void *, const void *const *, int, int64_t, float *) {
    return false;
}
bool dot_tile(quant::Type, const void *, size_t, int64_t, const void *, size_t, int64_t, int64_t, float *,
              int64_t) {
    return false;
}
bool quantize(quant::Type, const float *, void *, int64_t) {
    return false;
}
}  // namespace moerun::kernels::cpu::avx512
#endif

// The CUDA backend's decode products on the host, bit for bit (device-order.h). The chunk dot
// products are the device's own code (kernels/cuda/block-dot.cuh, plain C++ on the host); this
// file adds the lanes and the butterfly of the warp (kernels/cuda/mmv.cu). Compiled with
// -ffp-contract=off (kernels/CMakeLists.txt). On x86-64 with AVX2 and FMA the same code is built
// a second time for that target (fma_rn becomes one instruction instead of a libm call); the
// roundings are the same, only faster.
#include "moerun/kernels/cpu/device-order.h"

#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

#include "../cuda/block-dot.cuh"
#include "moerun/kernels/cpu/ops.h"
#include "moerun/kernels/cpu/vec-dot.h"
#include "moerun/quant/types.h"
#include "vec-dot-impl.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define MOERUN_DO_AVX2 __attribute__((target("avx2,fma,f16c"), flatten))
#endif

namespace moerun::kernels::cpu {
namespace {

using cuda::add_rn;

// One warp's row: chunk c into lane c % 32, then v_i = v_i + v_(i xor o) for o = 16 .. 1 (every
// lane of the device does this; lane 0's sum is written).
template <quant::Type T, int BS, int BB>
inline void rows_of(const uint8_t *w, uint64_t rb, const float *x, float *y, int64_t r0, int64_t r1,
                    int64_t cols) {
    const int64_t n_chunks = cols / 32;
    for (int64_t r = r0; r < r1; ++r) {
        const uint8_t *wr = w + static_cast<uint64_t>(r) * rb;
        float v[32] = {};
        for (int64_t c = 0; c < n_chunks; ++c) {
            const int64_t e = 32 * c;
            v[c & 31] = add_rn(v[c & 31], cuda::chunk_dot<T>(wr + static_cast<uint64_t>(e / BS) * BB,
                                                             static_cast<int>((e % BS) / 32), x + e));
        }
        if constexpr (BS == 1) {  // a partial last chunk (F32 / F16 / BF16 rows of any length)
            if (cols % 32 != 0) {
                const int64_t e = 32 * n_chunks;
                v[n_chunks & 31] =
                    add_rn(v[n_chunks & 31], cuda::dot_tail<T>(wr + static_cast<uint64_t>(e) * BB,
                                                               static_cast<int>(cols % 32), x + e));
            }
        }
        for (int o = 16; o > 0; o >>= 1) {
            float n[32];
            for (int i = 0; i < 32; ++i) n[i] = add_rn(v[i], v[i ^ o]);
            for (int i = 0; i < 32; ++i) v[i] = n[i];
        }
        y[r] = v[0];
    }
}

// The product over rows [r0, r1), for one of the weight types (BS elements in blocks of BB bytes).
struct Product {
    quant::Type type;
    const uint8_t *w;
    uint64_t rb;
    const float *x;
    float *y;
    int64_t cols;
};

// Rows [r0, r1) of p for the block type B (cuda::visit_block_type: the one list of the
// device-order types).
struct GenericRows {
    const Product &p;
    int64_t r0, r1;
    template <class B>
    void operator()(B) const {
        rows_of<B::type, B::bs, B::bb>(p.w, p.rb, p.x, p.y, r0, r1, p.cols);
    }
};

void run_generic(const Product &p, int64_t r0, int64_t r1) {
    cuda::visit_block_type(p.type, GenericRows{p, r0, r1});  // p.type checked by product()
}

#if defined(__x86_64__)
// AVX2 rows: lane k of a vector is dot8's partial sum p[k], so a chunk's dot product is four fmas
// (the first onto zero, as dot8 starts) and the horizontal sum below, in dot8's order. The sum of a
// chunk's x (the K-quants' minimum term) is the same for every row, so it is computed once.
MOERUN_DO_AVX2 inline float sum8_avx2(__m256 p) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(p), _mm256_extractf128_ps(p, 1));  // p_k + p_(k+4)
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));  // (p0 + p4) + (p2 + p6), (p1 + p5) + (p3 + p7)
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

// dot8 of 32 int8 weights q with x[32].
MOERUN_DO_AVX2 inline float dot8_avx2(__m256i q, const float *x) {
    __m256 p = _mm256_setzero_ps();
    for (int i = 0; i < 4; ++i) {  // elements 8i .. 8i + 7
        const __m128i h = i < 2 ? _mm256_castsi256_si128(q) : _mm256_extracti128_si256(q, 1);
        const __m256 w = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32((i & 1) ? _mm_srli_si128(h, 8) : h));
        p = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + 8 * i), p);
    }
    return sum8_avx2(p);
}

MOERUN_DO_AVX2 inline float half_avx2(const uint8_t *p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

// sx[c] = sum_x8<32>(x + 32 c), the chunk sums of x for the K-quants with minimums.
MOERUN_DO_AVX2 void chunk_sums_avx2(const float *x, int64_t n_chunks, float *sx) {
    for (int64_t c = 0; c < n_chunks; ++c) {
        __m256 p = _mm256_setzero_ps();
        for (int i = 0; i < 4; ++i) p = _mm256_add_ps(p, _mm256_loadu_ps(x + 32 * c + 8 * i));
        sx[c] = sum8_avx2(p);
    }
}

// The dot8 sums of eight chunks at once: p[j] holds chunk j's partial sums; returns the eight
// sums in chunk order, each added in sum8's order ((p0 + p4) + (p2 + p6)) + ((p1 + p5) + (p3 + p7)).
MOERUN_DO_AVX2 inline __m256 sum8_x8_avx2(const __m256 *p) {
    __m256 t[4];  // chunks 2i, 2i + 1: q_k = p_k + p_(k+4), k < 4, reordered to q0 q2 q1 q3
    for (int i = 0; i < 4; ++i) {
        const __m256 q = _mm256_add_ps(_mm256_permute2f128_ps(p[2 * i], p[2 * i + 1], 0x20),
                                       _mm256_permute2f128_ps(p[2 * i], p[2 * i + 1], 0x31));
        t[i] = _mm256_permute_ps(q, _MM_SHUFFLE(3, 1, 2, 0));
    }
    // (q0 + q2), (q1 + q3) per chunk: 128-bit lane 0 of h01 holds chunks 0 and 2, lane 1 chunks 1, 3
    const __m256 h01 = _mm256_hadd_ps(t[0], t[1]), h23 = _mm256_hadd_ps(t[2], t[3]);
    const __m256 s = _mm256_hadd_ps(h01, h23);  // chunks 0 2 4 6 | 1 3 5 7
    return _mm256_permutevar8x32_ps(s, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// Lane 0 of the warp's butterfly over v[32] (v_i + v_(i xor o), o = 16 .. 1), as four vectors.
MOERUN_DO_AVX2 inline float butterfly_lane0(const __m256 *v) {
    const __m256 x = _mm256_add_ps(_mm256_add_ps(v[0], v[2]), _mm256_add_ps(v[1], v[3]));  // o = 16, 8
    const __m256 y = _mm256_add_ps(x, _mm256_permute2f128_ps(x, x, 1));                    // o = 4
    const __m256 z = _mm256_add_ps(y, _mm256_permute_ps(y, _MM_SHUFFLE(1, 0, 3, 2)));      // o = 2
    const __m256 w = _mm256_add_ps(z, _mm256_permute_ps(z, _MM_SHUFFLE(2, 3, 0, 1)));      // o = 1
    return _mm256_cvtss_f32(w);
}

// Q4_K / Q5_K, a block (eight chunks) at a time: chunk j's quants are the low (j even) or high
// nibble of qs[32 (j / 2) ..], plus 16 * bit j of qh[l] for Q5_K.
template <bool Q5>
MOERUN_DO_AVX2 void rows_k4_avx2(const Product &p, const float *sx, int64_t r0, int64_t r1) {
    constexpr int kBytes = Q5 ? 176 : 144, kQs = Q5 ? 48 : 16;
    const __m256i m4 = _mm256_set1_epi32(15), one = _mm256_set1_epi32(1);
    const int64_t nb = p.cols / 256;
    for (int64_t r = r0; r < r1; ++r) {
        const uint8_t *wr = p.w + static_cast<uint64_t>(r) * p.rb;
        __m256 v[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int64_t b = 0; b < nb; ++b) {
            const uint8_t *blk = wr + b * kBytes;
            const float *xb = p.x + 256 * b;
            __m256 acc[8];
            for (int jj = 0; jj < 4; ++jj) {
                __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
                for (int i = 0; i < 4; ++i) {
                    __m128i raw;
                    std::memcpy(&raw, blk + kQs + 32 * jj + 8 * i, 8);
                    const __m256i q = _mm256_cvtepu8_epi32(raw);
                    __m256i ql = _mm256_and_si256(q, m4), qh4 = _mm256_srli_epi32(q, 4);
                    if constexpr (Q5) {
                        __m128i hraw;
                        std::memcpy(&hraw, blk + 16 + 8 * i, 8);
                        const __m256i h = _mm256_cvtepu8_epi32(hraw);
                        ql = _mm256_or_si256(
                            ql, _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h, 2 * jj), one), 4));
                        qh4 = _mm256_or_si256(
                            qh4,
                            _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h, 2 * jj + 1), one), 4));
                    }
                    lo = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ql), _mm256_loadu_ps(xb + 64 * jj + 8 * i), lo);
                    hi = _mm256_fmadd_ps(_mm256_cvtepi32_ps(qh4), _mm256_loadu_ps(xb + 64 * jj + 32 + 8 * i),
                                         hi);
                }
                acc[2 * jj] = lo, acc[2 * jj + 1] = hi;
            }
            const __m256 sq = sum8_x8_avx2(acc);
            const K4ScaleWords w = k4_scale_words(blk + 4);
            const __m256 sc =
                _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_setr_epi32(int(w.sc_lo), int(w.sc_hi), 0, 0)));
            const __m256 mn =
                _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_setr_epi32(int(w.m_lo), int(w.m_hi), 0, 0)));
            const __m256 d = _mm256_set1_ps(half_avx2(blk)), dmin = _mm256_set1_ps(half_avx2(blk + 2));
            // scale_min, eight chunks: d * sc * sq - dmin * m * sx
            const __m256 part =
                _mm256_sub_ps(_mm256_mul_ps(_mm256_mul_ps(d, sc), sq),
                              _mm256_mul_ps(_mm256_mul_ps(dmin, mn), _mm256_loadu_ps(sx + 8 * b)));
            v[b & 3] = _mm256_add_ps(v[b & 3], part);  // chunks 8b .. 8b + 7 go to lanes 8 (b % 4) ..
        }
        p.y[r] = butterfly_lane0(v);
    }
}

// Q6_K, a block at a time: chunk j = 4 h + k takes the low (k < 2) or high nibble of
// ql[64 h + 32 (k % 2) + l] and bits 2k, 2k + 1 of qh[32 h + l]; each half of 16 elements has
// its own dot8 and scale (scales[2 j], scales[2 j + 1]).
MOERUN_DO_AVX2 void rows_q6_k_avx2(const Product &p, int64_t r0, int64_t r1) {
    const __m256i m4 = _mm256_set1_epi32(15), m2 = _mm256_set1_epi32(3), m32 = _mm256_set1_epi32(32);
    const __m128i even_odd = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    const int64_t nb = p.cols / 256;
    for (int64_t r = r0; r < r1; ++r) {
        const uint8_t *wr = p.w + static_cast<uint64_t>(r) * p.rb;
        __m256 v[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int64_t b = 0; b < nb; ++b) {
            const uint8_t *blk = wr + b * 210;
            const float *xb = p.x + 256 * b;
            __m256 acc[2][8];  // [half][chunk]
            for (int h = 0; h < 2; ++h)
                for (int i = 0; i < 4; ++i) {  // elements 8i .. 8i + 7 of the chunks 4h .. 4h + 3
                    __m128i ra, rb, rh;
                    std::memcpy(&ra, blk + 64 * h + 8 * i, 8);
                    std::memcpy(&rb, blk + 64 * h + 32 + 8 * i, 8);
                    std::memcpy(&rh, blk + 128 + 32 * h + 8 * i, 8);
                    const __m256i qa = _mm256_cvtepu8_epi32(ra), qb = _mm256_cvtepu8_epi32(rb),
                                  qh = _mm256_cvtepu8_epi32(rh);
                    for (int k = 0; k < 4; ++k) {
                        const __m256i src = (k & 1) ? qb : qa;
                        const __m256i l4 = _mm256_and_si256(k >= 2 ? _mm256_srli_epi32(src, 4) : src, m4);
                        const __m256i h2 = _mm256_and_si256(_mm256_srli_epi32(qh, 2 * k), m2);
                        const __m256 q = _mm256_cvtepi32_ps(
                            _mm256_sub_epi32(_mm256_or_si256(l4, _mm256_slli_epi32(h2, 4)), m32));
                        const int j = 4 * h + k;
                        const __m256 xv = _mm256_loadu_ps(xb + 32 * j + 8 * i);
                        __m256 &a = acc[i / 2][j];
                        a = _mm256_fmadd_ps(q, xv, (i % 2) ? a : _mm256_setzero_ps());
                    }
                }
            const __m256 s0 = sum8_x8_avx2(acc[0]), s1 = sum8_x8_avx2(acc[1]);
            const __m128i sc =
                _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i *>(blk + 192)), even_odd);
            const __m256 sc0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc)),
                         sc1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc, 8)));
            // two_scales, eight chunks: d * (sc0 * s0 + sc1 * s1)
            const __m256 part = _mm256_mul_ps(_mm256_set1_ps(half_avx2(blk + 208)),
                                              _mm256_add_ps(_mm256_mul_ps(sc0, s0), _mm256_mul_ps(sc1, s1)));
            v[b & 3] = _mm256_add_ps(v[b & 3], part);
        }
        p.y[r] = butterfly_lane0(v);
    }
}

MOERUN_DO_AVX2 void rows_q8_0_avx2(const Product &p, int64_t r0, int64_t r1) {
    const int64_t nb = p.cols / 32;
    for (int64_t r = r0; r < r1; ++r) {
        const uint8_t *wr = p.w + static_cast<uint64_t>(r) * p.rb;
        alignas(32) float v[32] = {};
        for (int64_t c = 0; c < nb; ++c) {
            const uint8_t *blk = wr + c * 34;
            const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(blk + 2));
            v[c & 31] = add_rn(v[c & 31], cuda::mul_rn(half_avx2(blk), dot8_avx2(q, p.x + 32 * c)));
        }
        const __m256 lanes[4] = {_mm256_load_ps(v), _mm256_load_ps(v + 8), _mm256_load_ps(v + 16),
                                 _mm256_load_ps(v + 24)};
        p.y[r] = butterfly_lane0(lanes);
    }
}

struct Avx2Rows {
    const Product &p;
    int64_t r0, r1;
    template <class B>
    MOERUN_DO_AVX2 void operator()(B) const {
        rows_of<B::type, B::bs, B::bb>(p.w, p.rb, p.x, p.y, r0, r1, p.cols);
    }
};

MOERUN_DO_AVX2 void run_avx2(const Product &p, const float *sx, int64_t r0, int64_t r1) {
    switch (p.type) {
        case quant::Type::Q4_K:
            return rows_k4_avx2<false>(p, sx, r0, r1);
        case quant::Type::Q5_K:
            return rows_k4_avx2<true>(p, sx, r0, r1);
        case quant::Type::Q6_K:
            return rows_q6_k_avx2(p, r0, r1);
        case quant::Type::Q8_0:
            return rows_q8_0_avx2(p, r0, r1);
        default:
            cuda::visit_block_type(p.type, Avx2Rows{p, r0, r1});  // p.type checked by product()
    }
}

bool use_avx2() {
    return active_isa() != Isa::generic;  // avx2 or better: the CPU has AVX2, FMA and F16C
}
#endif

// Rows [r0, r1) of p; sx: p.x's chunk sums where the type needs them (chunk_sums).
void run_rows(const Product &p, const float *sx, int64_t r0, int64_t r1) {
#if defined(__x86_64__)
    if (use_avx2()) return run_avx2(p, sx, r0, r1);
#endif
    (void)sx;
    run_generic(p, r0, r1);
}

// The chunk sums of x that run_rows needs for products of the types `ts` (sized n_chunks, or
// empty): computed once for all of them.
void chunk_sums(std::initializer_list<quant::Type> ts, const float *x, int64_t cols, std::vector<float> &sx) {
    sx.clear();
#if defined(__x86_64__)
    const bool needed = std::any_of(
        ts.begin(), ts.end(), [](quant::Type t) { return t == quant::Type::Q4_K || t == quant::Type::Q5_K; });
    if (use_avx2() && needed) {
        sx.resize(static_cast<size_t>(cols / 32));
        chunk_sums_avx2(x, cols / 32, sx.data());
    }
#else
    (void)ts, (void)x, (void)cols;
#endif
}

Product product(quant::Type t, const void *w, const float *x, float *y, int64_t rows, int64_t cols) {
    if (!device_order_supported(t))
        throw std::invalid_argument("device-order product: no kernel for " +
                                    std::string(quant::type_name(t)));
    const int64_t bs = quant::traits(t).block_size;
    if (rows < 0 || cols <= 0 || (bs != 1 && (cols % 32 != 0 || cols % bs != 0)))
        throw std::invalid_argument("device-order product: " + std::to_string(cols) + " columns of " +
                                    std::string(quant::type_name(t)) + " (expected a multiple of 32 and of " +
                                    std::to_string(bs) + ")");
    return {t,
            static_cast<const uint8_t *>(w),
            static_cast<uint64_t>(cols / bs) * quant::traits(t).type_size,
            x,
            y,
            cols};
}

constexpr int64_t kGrain = 16;  // rows per scheduling unit

}  // namespace

bool device_order_supported(quant::Type t) {
    return cuda::visit_block_type(t, [](auto) {});
}

void device_order_matvec(ThreadPool &pool, quant::Type t, const void *w, const float *x, float *y,
                         int64_t rows, int64_t cols) {
    const Product p = product(t, w, x, y, rows, cols);
    std::vector<float> sx;
    chunk_sums({t}, x, cols, sx);
    pool.parallel_for(
        rows, [&](int64_t r0, int64_t r1, int) { run_rows(p, sx.data(), r0, r1); }, kGrain);
}

void device_order_expert(ThreadPool &pool, const HostExpert &e, const float *x, float *g, float *u,
                         float *out) {
    const int64_t E = e.n_embd, F = e.n_ff;
    // gate and up in one pass over their 2F rows
    const Product pg = product(e.gate_type, e.gate, x, g, F, E), pu = product(e.up_type, e.up, x, u, F, E);
    std::vector<float> sx;  // x's chunk sums, the same for both products
    chunk_sums({e.gate_type, e.up_type}, x, E, sx);
    pool.parallel_for(
        2 * F,
        [&](int64_t r0, int64_t r1, int) {
            if (r0 < F) run_rows(pg, sx.data(), r0, std::min(r1, F));
            if (r1 > F) run_rows(pu, sx.data(), std::max(r0, F) - F, r1 - F);
        },
        kGrain);
    for (int64_t i = 0; i < F; ++i) g[i] = cuda::swiglu_rn(g[i], u[i]);
    device_order_matvec(pool, e.down_type, e.down, g, out, E, F);
}

void host_expert_row(ThreadPool &pool, Backend::HostMath math, const HostExpert &e, const float *x, float *g,
                     float *u, float *out) {
    if (math == Backend::HostMath::device_order) return device_order_expert(pool, e, x, g, u, out);
    const int64_t E = e.n_embd, F = e.n_ff;
    const MatmulJob gu[] = {{e.gate_type, e.gate, x, g, F, E, 1}, {e.up_type, e.up, x, u, F, E, 1}};
    matmul_group(pool, gu);
    swiglu(g, u, g, F);
    matmul(pool, e.down_type, e.down, g, out, E, F, 1);
}

}  // namespace moerun::kernels::cpu

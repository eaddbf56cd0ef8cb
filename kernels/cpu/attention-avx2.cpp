// AVX2 + FMA + F16C versions of attention_head and the F16 KV store (selected when active_isa()
// is avx2 or avx512 and the AVX-512 kernel does not take the head size). Same definition as
// attention.cpp: F32 products, an F16 cache rounds the query (keys) and the probabilities (values).
#include "moerun/kernels/cpu/ops.h"
#include "vec-dot-impl.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define MOERUN_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace moerun::kernels::cpu::avx2 {
namespace {

constexpr int64_t kMaxHead = 512;

MOERUN_AVX2 inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

template <bool F16>
MOERUN_AVX2 inline __m256 load8(const void *row, int64_t i) {
    if constexpr (F16)
        return _mm256_cvtph_ps(
            _mm_loadu_si128(reinterpret_cast<const __m128i *>(static_cast<const uint16_t *>(row) + i)));
    else
        return _mm256_loadu_ps(static_cast<const float *>(row) + i);
}

MOERUN_AVX2 inline __m256 round_half8(__m256 x) {
    return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

// x[0..n) rounded to F16 and back, in place.
MOERUN_AVX2 void round_half(float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, round_half8(_mm256_loadu_ps(x + i)));
    if (i < n) {  // the tail through a zero-padded register
        alignas(32) float t[8] = {};
        for (int64_t j = i; j < n; ++j) t[j - i] = x[j];
        _mm256_store_ps(t, round_half8(_mm256_load_ps(t)));
        for (int64_t j = i; j < n; ++j) x[j] = t[j - i];
    }
}

template <bool K16, bool V16>
MOERUN_AVX2 void attend(const float *q, const void *k, const void *v, int64_t n_pos, int64_t hd, float scale,
                        float *scores, float *out) {
    alignas(32) float qr[kMaxHead];
    for (int64_t i = 0; i < hd; i += 8) {
        const __m256 x = _mm256_loadu_ps(q + i);
        _mm256_store_ps(qr + i, K16 ? round_half8(x) : x);
    }
    const size_t kb = K16 ? 2 : 4, vb = V16 ? 2 : 4;
    for (int64_t p = 0; p < n_pos; ++p) {
        const void *kp = static_cast<const uint8_t *>(k) + static_cast<size_t>(p * hd) * kb;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        int64_t i = 0;
        for (; i + 16 <= hd; i += 16) {
            a0 = _mm256_fmadd_ps(_mm256_load_ps(qr + i), load8<K16>(kp, i), a0);
            a1 = _mm256_fmadd_ps(_mm256_load_ps(qr + i + 8), load8<K16>(kp, i + 8), a1);
        }
        if (i < hd) a0 = _mm256_fmadd_ps(_mm256_load_ps(qr + i), load8<K16>(kp, i), a0);
        scores[p] = hsum(_mm256_add_ps(a0, a1)) * scale;
    }
    softmax(scores, n_pos);
    if (V16) round_half(scores, n_pos);
    // Four positions per pass over the output, which stays in L1.
    const auto row = [&](int64_t p) {
        return static_cast<const uint8_t *>(v) + static_cast<size_t>(p * hd) * vb;
    };
    int64_t p = 0;
    for (; p + 4 <= n_pos; p += 4) {
        const void *v0 = row(p), *v1 = row(p + 1), *v2 = row(p + 2), *v3 = row(p + 3);
        const __m256 s0 = _mm256_set1_ps(scores[p]), s1 = _mm256_set1_ps(scores[p + 1]),
                     s2 = _mm256_set1_ps(scores[p + 2]), s3 = _mm256_set1_ps(scores[p + 3]);
        for (int64_t i = 0; i < hd; i += 8) {
            __m256 o = _mm256_loadu_ps(out + i);
            o = _mm256_fmadd_ps(s0, load8<V16>(v0, i), o);
            o = _mm256_fmadd_ps(s1, load8<V16>(v1, i), o);
            o = _mm256_fmadd_ps(s2, load8<V16>(v2, i), o);
            o = _mm256_fmadd_ps(s3, load8<V16>(v3, i), o);
            _mm256_storeu_ps(out + i, o);
        }
    }
    for (; p < n_pos; ++p) {
        const void *vp = row(p);
        const __m256 s = _mm256_set1_ps(scores[p]);
        for (int64_t i = 0; i < hd; i += 8)
            _mm256_storeu_ps(out + i, _mm256_fmadd_ps(s, load8<V16>(vp, i), _mm256_loadu_ps(out + i)));
    }
}

}  // namespace

bool attention_head(const float *q, const void *k, quant::Type type_k, const void *v, quant::Type type_v,
                    int64_t n_pos, int64_t hd, float scale, float *scores, float *out) {
    if (hd % 8 != 0 || hd > kMaxHead) return false;
    const bool k16 = type_k == quant::Type::F16, v16 = type_v == quant::Type::F16;
    if (k16 && v16)
        attend<true, true>(q, k, v, n_pos, hd, scale, scores, out);
    else if (k16)
        attend<true, false>(q, k, v, n_pos, hd, scale, scores, out);
    else if (v16)
        attend<false, true>(q, k, v, n_pos, hd, scale, scores, out);
    else
        attend<false, false>(q, k, v, n_pos, hd, scale, scores, out);
    return true;
}

MOERUN_AVX2 bool store_f16(const float *src, uint16_t *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128(
            reinterpret_cast<__m128i *>(dst + i),
            _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    if (i < n) {  // the tail through a zero-padded register
        alignas(32) float t[8] = {};
        alignas(16) uint16_t h[8];
        for (int64_t j = i; j < n; ++j) t[j - i] = src[j];
        _mm_store_si128(reinterpret_cast<__m128i *>(h),
                        _mm256_cvtps_ph(_mm256_load_ps(t), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        for (int64_t j = i; j < n; ++j) dst[j] = h[j - i];
    }
    return true;
}

}  // namespace moerun::kernels::cpu::avx2

#else
namespace moerun::kernels::cpu::avx2 {
bool attention_head(const float *, const void *, quant::Type, const void *, quant::Type, int64_t, int64_t,
                    float, float *, float *) {
    return false;
}
bool store_f16(const float *, uint16_t *, int64_t) {
    return false;
}
}  // namespace moerun::kernels::cpu::avx2
#endif

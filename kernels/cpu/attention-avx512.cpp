// AVX-512 version of attention_head (selected when active_isa() is avx512) for head sizes 64, 128
// and 256: the query and the output stay in registers. Same definition as attention.cpp.
#include "moerun/kernels/cpu/ops.h"
#include "vec-dot-impl.h"

#if defined(__x86_64__)
#include <immintrin.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#define MOERUN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))

namespace moerun::kernels::cpu::avx512 {
namespace {

template <bool F16>
MOERUN_AVX512 inline __m512 load16(const void *row, int64_t i) {
    if constexpr (F16)
        return _mm512_cvtph_ps(
            _mm256_loadu_si256(reinterpret_cast<const __m256i *>(static_cast<const uint16_t *>(row) + i)));
    else
        return _mm512_loadu_ps(static_cast<const float *>(row) + i);
}

MOERUN_AVX512 inline __m512 round_half16(__m512 x) {
    return _mm512_cvtph_ps(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

// NC = head_dim / 16 vectors.
template <int NC, bool K16, bool V16>
MOERUN_AVX512 void attend(const float *q, const void *k, const void *v, int64_t n_pos, float scale,
                          float *scores, float *out) {
    constexpr int64_t hd = 16 * NC;
    __m512 qv[NC];
    for (int j = 0; j < NC; ++j) {
        qv[j] = _mm512_loadu_ps(q + 16 * j);
        if (K16) qv[j] = round_half16(qv[j]);
    }
    constexpr size_t kb = K16 ? 2 : 4, vb = V16 ? 2 : 4;
    for (int64_t p = 0; p < n_pos; ++p) {
        const void *kp = static_cast<const uint8_t *>(k) + static_cast<size_t>(p * hd) * kb;
        __m512 a0 = _mm512_mul_ps(qv[0], load16<K16>(kp, 0));
        __m512 a1 = _mm512_mul_ps(qv[1], load16<K16>(kp, 16));
        for (int j = 2; j < NC; j += 2) {
            a0 = _mm512_fmadd_ps(qv[j], load16<K16>(kp, 16 * j), a0);
            a1 = _mm512_fmadd_ps(qv[j + 1], load16<K16>(kp, 16 * j + 16), a1);
        }
        scores[p] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) * scale;
    }
    softmax(scores, n_pos);
    if (V16) {
        int64_t p = 0;
        for (; p + 16 <= n_pos; p += 16)
            _mm512_storeu_ps(scores + p, round_half16(_mm512_loadu_ps(scores + p)));
        if (p < n_pos) {  // the tail through a zero-padded register
            alignas(64) float t[16] = {};
            for (int64_t j = p; j < n_pos; ++j) t[j - p] = scores[j];
            _mm512_store_ps(t, round_half16(_mm512_load_ps(t)));
            for (int64_t j = p; j < n_pos; ++j) scores[j] = t[j - p];
        }
    }
    __m512 o[NC];
    for (int j = 0; j < NC; ++j) o[j] = _mm512_loadu_ps(out + 16 * j);
    for (int64_t p = 0; p < n_pos; ++p) {
        const void *vp = static_cast<const uint8_t *>(v) + static_cast<size_t>(p * hd) * vb;
        const __m512 s = _mm512_set1_ps(scores[p]);
        for (int j = 0; j < NC; ++j) o[j] = _mm512_fmadd_ps(s, load16<V16>(vp, 16 * j), o[j]);
    }
    for (int j = 0; j < NC; ++j) _mm512_storeu_ps(out + 16 * j, o[j]);
}

template <int NC>
bool attend_types(const float *q, const void *k, bool k16, const void *v, bool v16, int64_t n_pos,
                  float scale, float *scores, float *out) {
    if (k16 && v16)
        attend<NC, true, true>(q, k, v, n_pos, scale, scores, out);
    else if (k16)
        attend<NC, true, false>(q, k, v, n_pos, scale, scores, out);
    else if (v16)
        attend<NC, false, true>(q, k, v, n_pos, scale, scores, out);
    else
        attend<NC, false, false>(q, k, v, n_pos, scale, scores, out);
    return true;
}

}  // namespace

bool attention_head(const float *q, const void *k, quant::Type type_k, const void *v, quant::Type type_v,
                    int64_t n_pos, int64_t hd, float scale, float *scores, float *out) {
    const bool k16 = type_k == quant::Type::F16, v16 = type_v == quant::Type::F16;
    switch (hd) {
        case 64:
            return attend_types<4>(q, k, k16, v, v16, n_pos, scale, scores, out);
        case 128:
            return attend_types<8>(q, k, k16, v, v16, n_pos, scale, scores, out);
        case 256:
            return attend_types<16>(q, k, k16, v, v16, n_pos, scale, scores, out);
        default:
            return false;
    }
}

}  // namespace moerun::kernels::cpu::avx512

#else
namespace moerun::kernels::cpu::avx512 {
bool attention_head(const float *, const void *, quant::Type, const void *, quant::Type, int64_t, int64_t,
                    float, float *, float *) {
    return false;
}
}  // namespace moerun::kernels::cpu::avx512
#endif

// AVX-512 versions of the attention helpers of ops.cpp (selected when active_isa() is avx512).
#include "moerun/kernels/cpu/ops.h"
#include "vec-dot-impl.h"

#if defined(__x86_64__)
#include <immintrin.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#define MOERUN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))

namespace moerun::kernels::cpu::avx512 {
namespace {

// NC = head_dim / 16 vectors: the query and the output stay in registers.
template <int NC>
MOERUN_AVX512 void attend(const float *q, const float *k, const float *v, int64_t stride, int64_t n_pos,
                          float scale, float *scores, float *out) {
    __m512 qv[NC];
    for (int j = 0; j < NC; ++j) qv[j] = _mm512_loadu_ps(q + 16 * j);
    for (int64_t p = 0; p < n_pos; ++p) {
        const float *kp = k + p * stride;
        __m512 a0 = _mm512_mul_ps(qv[0], _mm512_loadu_ps(kp));
        __m512 a1 = _mm512_mul_ps(qv[1], _mm512_loadu_ps(kp + 16));
        for (int j = 2; j < NC; j += 2) {
            a0 = _mm512_fmadd_ps(qv[j], _mm512_loadu_ps(kp + 16 * j), a0);
            a1 = _mm512_fmadd_ps(qv[j + 1], _mm512_loadu_ps(kp + 16 * j + 16), a1);
        }
        scores[p] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) * scale;
    }
    softmax(scores, n_pos);
    __m512 o[NC];
    for (int j = 0; j < NC; ++j) o[j] = _mm512_loadu_ps(out + 16 * j);
    for (int64_t p = 0; p < n_pos; ++p) {
        const float *vp = v + p * stride;
        const __m512 s = _mm512_set1_ps(scores[p]);
        for (int j = 0; j < NC; ++j) o[j] = _mm512_fmadd_ps(s, _mm512_loadu_ps(vp + 16 * j), o[j]);
    }
    for (int j = 0; j < NC; ++j) _mm512_storeu_ps(out + 16 * j, o[j]);
}

}  // namespace

bool attention_head(const float *q, const float *k, const float *v, int64_t stride, int64_t n_pos, int64_t hd,
                    float scale, float *scores, float *out) {
    if (hd == 128) {
        attend<8>(q, k, v, stride, n_pos, scale, scores, out);
        return true;
    }
    if (hd == 64) {
        attend<4>(q, k, v, stride, n_pos, scale, scores, out);
        return true;
    }
    return false;
}

}  // namespace moerun::kernels::cpu::avx512

#else
namespace moerun::kernels::cpu::avx512 {
bool attention_head(const float *, const float *, const float *, int64_t, int64_t, int64_t, float, float *,
                    float *) {
    return false;
}
}  // namespace moerun::kernels::cpu::avx512
#endif

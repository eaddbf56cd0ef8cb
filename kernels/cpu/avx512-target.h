// Internal (x86-64 only): the target of the AVX-512 kernel files (vec-dot-avx512.cpp,
// lanes-avx512.cpp, lanes-k-avx512.cpp), compiled for every x86-64 and entered only after
// avx512::supported().
#pragma once

// GCC 12 reports the intentionally undefined vectors inside its own AVX-512 intrinsics
// (_mm512_undefined_*) as uninitialized once they are inlined into these files.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#define MOERUN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))

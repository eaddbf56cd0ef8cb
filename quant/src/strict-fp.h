// Included by the files that compute with floats, before their definitions (internal): turns off
// the contraction of a * b + c into one fused multiply-add, which compilers do by default where
// the target has FMA (g++ 12 does so even with -std=c++20 once -march allows FMA). The reference
// code rounds after every operation, as gguf-py (numpy) does, so its results are bit-exact
// whatever the compiler flags (except clang -ffp-contract=fast, which ignores the pragma).
#pragma once

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

// Half precision for emulated device code: IEEE binary16 through the compiler's _Float16
// (round to nearest even, as __float2half_rn), independent of quant/'s conversions.
#pragma once
#include "moerun-cuda-emu.h"

struct __half_raw {
    unsigned short x;
};
struct __half {
    unsigned short x;
    __half() = default;
    __half(__half_raw r) : x(r.x) {}
};

inline float __half2float(__half h) {
    _Float16 f;
    std::memcpy(&f, &h.x, 2);
    return static_cast<float>(f);
}
inline __half __float2half_rn(float v) {
    const _Float16 f = static_cast<_Float16>(v);
    __half h;
    std::memcpy(&h.x, &f, 2);
    return h;
}
inline __half __float2half(float v) {
    return __float2half_rn(v);
}

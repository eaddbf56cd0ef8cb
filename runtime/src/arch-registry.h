// The architectures moerun supports, one file each (arch-<name>.cpp).
#pragma once
#include "moerun/runtime/model.h"

namespace moerun::arch {
extern const ArchSpec kQwen3Moe;
extern const ArchSpec kQwen2Moe;
extern const ArchSpec kOlmoe;
extern const ArchSpec kLlamaMoe;
}  // namespace moerun::arch

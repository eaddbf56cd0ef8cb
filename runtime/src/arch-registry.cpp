#include "arch-registry.h"

namespace moerun {
namespace {
const ArchSpec *const kArchs[] = {&arch::kLlamaMoe, &arch::kOlmoe, &arch::kQwen2Moe, &arch::kQwen3Moe};
}

const ArchSpec *find_arch(std::string_view name) {
    for (const ArchSpec *a : kArchs)
        if (a->name == name) return a;
    return nullptr;
}

std::string supported_archs() {
    return "llama (Mixtral-style, with experts), olmoe, qwen2moe, qwen3moe";
}

}  // namespace moerun

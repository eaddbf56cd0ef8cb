// Mixtral: the llama architecture with stacked experts. RoPE in the normal (interleaved pair)
// order, softmax over the selected top-k (softmax over all, then renormalised).
#include "arch-registry.h"

namespace moerun::arch {
extern const ArchSpec kLlamaMoe{.name = "llama",
                                .rope = RopeMode::normal,
                                .qk_norm = QkNorm::none,
                                .norm_topk = true,
                                .shared_expert = false};
}

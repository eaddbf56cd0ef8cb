// Qwen3-MoE: RoPE NeoX, RMSNorm of q and k per head before RoPE, softmax router with the
// selected top-k weights renormalised, no shared expert, no attention biases.
#include "arch-registry.h"

namespace moerun::arch {
extern const ArchSpec kQwen3Moe{.name = "qwen3moe",
                                .rope = RopeMode::neox,
                                .qk_norm = QkNorm::per_head,
                                .norm_topk = true,
                                .shared_expert = false};
}

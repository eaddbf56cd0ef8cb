// Qwen1.5/Qwen2-MoE: RoPE NeoX, q/k/v biases, softmax router without renormalisation, and a
// shared expert whose output is scaled by sigmoid(gate_inp_shexp . x).
#include "arch-registry.h"

namespace moerun::arch {
extern const ArchSpec kQwen2Moe{.name = "qwen2moe",
                                .rope = RopeMode::neox,
                                .qk_norm = QkNorm::none,
                                .norm_topk = false,
                                .shared_expert = true,
                                .tied_output = false};
}

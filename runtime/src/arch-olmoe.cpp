// OLMoE: RoPE NeoX, RMSNorm of the full q and k projections (before splitting into heads),
// softmax router without renormalisation.
#include "arch-registry.h"

namespace moerun::arch {
extern const ArchSpec kOlmoe{.name = "olmoe",
                             .rope = RopeMode::neox,
                             .qk_norm = QkNorm::full,
                             .norm_topk = false,
                             .shared_expert = false,
                             .tied_output = false};
}

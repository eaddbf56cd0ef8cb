// Built-in chat templates of the supported families, chosen from the GGUF: the
// `tokenizer.chat_template` text when it names a known format, else the architecture.
//   chatml  (Qwen2-MoE, Qwen3-MoE): <|im_start|>role\n...<|im_end|>\n ... <|im_start|>assistant\n
//   tulu    (OLMoE-Instruct):        <|user|>\n...\n<|assistant|>\n ... reply<eos>\n
//   mistral (Mixtral-Instruct):      [INST] ... [/INST] reply</s>
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "moerun/runtime/gguf.h"

namespace moerun {

enum class ChatTemplate { chatml, tulu, mistral };
std::string_view chat_template_name(ChatTemplate t);

struct ChatMessage {
    std::string role;  // "system", "user", "assistant"
    std::string content;
};

ChatTemplate detect_chat_template(const gguf::GgufFile &f);

// The text of `messages` in template t; with add_generation_prompt, ends with the opening of the
// assistant's turn. `eos_text` is the end-of-turn token text some templates put after replies.
std::string format_chat(ChatTemplate t, const std::vector<ChatMessage> &messages, bool add_generation_prompt,
                        std::string_view eos_text);

}  // namespace moerun

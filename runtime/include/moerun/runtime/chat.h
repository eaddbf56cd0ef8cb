// Built-in chat templates of the supported families, chosen from the GGUF: the
// `tokenizer.chat_template` text when it names a known format, else the architecture.
//   chatml  (Qwen2-MoE, Qwen3-MoE): <|im_start|>role\n...<|im_end|>\n ... <|im_start|>assistant\n
//   tulu    (OLMoE-Instruct):        <|user|>\n...\n<|assistant|>\n ... reply<eos>\n
//   mistral (Mixtral-Instruct):      [INST] ... [/INST] reply</s>
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "moerun/runtime/gguf.h"
#include "moerun/runtime/tokenizer.h"

namespace moerun {

enum class ChatTemplate { chatml, tulu, mistral };
inline constexpr ChatTemplate kChatTemplates[] = {ChatTemplate::chatml, ChatTemplate::tulu,
                                                  ChatTemplate::mistral};
std::string_view chat_template_name(ChatTemplate t);
// The template of a name chat_template_name gives ("chatml", "tulu", "mistral"); nullopt otherwise.
std::optional<ChatTemplate> chat_template_from_name(std::string_view name);
// Every template's name, in kChatTemplates' order (the CLI's choices, the C API's message).
std::vector<std::string> chat_template_names();

struct ChatMessage {
    std::string role;  // "system", "user", "assistant"
    std::string content;
};

ChatTemplate detect_chat_template(const gguf::GgufFile &f);

// The text the templates put after a reply: the vocabulary's EOS token ("" without one).
std::string chat_eos_text(const Tokenizer &tok);

// The text of `messages` in template t; with add_generation_prompt, ends with the opening of the
// assistant's turn. `eos_text` is the end-of-turn token text some templates put after replies.
// Roles: chatml and tulu write any role as given; mistral knows only "system", "user" and
// "assistant" and throws std::invalid_argument for another (it has no place for it).
std::string format_chat(ChatTemplate t, const std::vector<ChatMessage> &messages, bool add_generation_prompt,
                        std::string_view eos_text);

}  // namespace moerun

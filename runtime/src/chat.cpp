#include "moerun/runtime/chat.h"

#include <stdexcept>

namespace moerun {

std::string_view chat_template_name(ChatTemplate t) {
    switch (t) {
        case ChatTemplate::chatml:
            return "chatml";
        case ChatTemplate::tulu:
            return "tulu";
        case ChatTemplate::mistral:
            return "mistral";
    }
    return "?";
}

std::optional<ChatTemplate> chat_template_from_name(std::string_view name) {
    for (ChatTemplate t : kChatTemplates)
        if (name == chat_template_name(t)) return t;
    return std::nullopt;
}

std::vector<std::string> chat_template_names() {
    std::vector<std::string> names;
    for (ChatTemplate t : kChatTemplates) names.emplace_back(chat_template_name(t));
    return names;
}

std::string chat_eos_text(const Tokenizer &tok) {
    return tok.eos() >= 0 ? std::string(tok.text(tok.eos())) : std::string();
}

ChatTemplate detect_chat_template(const gguf::GgufFile &f) {
    if (auto tmpl = f.get_string_opt("tokenizer.chat_template")) {
        if (tmpl->find("<|im_start|>") != std::string_view::npos) return ChatTemplate::chatml;
        if (tmpl->find("[INST]") != std::string_view::npos) return ChatTemplate::mistral;
        if (tmpl->find("<|user|>") != std::string_view::npos) return ChatTemplate::tulu;
    }
    const std::string_view arch = f.get_string_opt("general.architecture").value_or("");
    if (arch == "olmoe") return ChatTemplate::tulu;
    if (arch == "llama") return ChatTemplate::mistral;
    return ChatTemplate::chatml;
}

std::string format_chat(ChatTemplate t, const std::vector<ChatMessage> &messages, bool add_generation_prompt,
                        std::string_view eos_text) {
    std::string out;
    switch (t) {
        case ChatTemplate::chatml:
            for (const auto &m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
            if (add_generation_prompt) out += "<|im_start|>assistant\n";
            break;
        case ChatTemplate::tulu:
            for (const auto &m : messages) {
                if (m.role == "assistant")
                    out += "<|assistant|>\n" + m.content + std::string(eos_text) + "\n";
                else
                    out += "<|" + m.role + "|>\n" + m.content + "\n";
            }
            if (add_generation_prompt) out += "<|assistant|>\n";
            break;
        case ChatTemplate::mistral: {
            std::string pending_system;
            for (const auto &m : messages) {
                if (m.role == "system")
                    pending_system += m.content + "\n\n";
                else if (m.role == "user")
                    out += "[INST] " + pending_system + m.content + " [/INST]", pending_system.clear();
                else if (m.role == "assistant")
                    out += m.content + std::string(eos_text);
                else
                    throw std::invalid_argument("chat template mistral: role '" + m.role +
                                                "' (expected system, user or assistant)");
            }
            break;  // the assistant's turn follows [/INST] directly
        }
    }
    return out;
}

}  // namespace moerun

#include "moerun/runtime/chat.h"

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

ChatTemplate detect_chat_template(const gguf::GgufFile &f) {
    if (auto tmpl = f.get_string_opt("tokenizer.chat_template")) {
        if (tmpl->find("<|im_start|>") != std::string_view::npos) return ChatTemplate::chatml;
        if (tmpl->find("[INST]") != std::string_view::npos) return ChatTemplate::mistral;
        if (tmpl->find("<|user|>") != std::string_view::npos) return ChatTemplate::tulu;
    }
    const std::string_view arch = f.get_string("general.architecture");
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
                else
                    out += m.content + std::string(eos_text);
            }
            break;  // the assistant's turn follows [/INST] directly
        }
    }
    return out;
}

}  // namespace moerun

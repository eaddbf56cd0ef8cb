#include <doctest/doctest.h>

#include "moerun/runtime/chat.h"

using namespace moerun;

TEST_CASE("chat templates render the families' formats") {
    const std::vector<ChatMessage> conv = {
        {"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "Bye"}};
    CHECK(format_chat(ChatTemplate::chatml, conv, true, "") ==
          "<|im_start|>system\nBe "
          "brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
          "<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n");
    CHECK(format_chat(ChatTemplate::tulu, conv, true, "<|endoftext|>") ==
          "<|system|>\nBe "
          "brief.\n<|user|>\nHi\n<|assistant|>\nHello!<|endoftext|>\n<|user|>\nBye\n<|assistant|>\n");
    CHECK(format_chat(ChatTemplate::mistral, conv, true, "</s>") ==
          "[INST] Be brief.\n\nHi [/INST]Hello!</s>[INST] Bye [/INST]");
}

TEST_CASE("a conversation's text only grows turn by turn (so the KV cache can be reused)") {
    for (auto t : {ChatTemplate::chatml, ChatTemplate::tulu, ChatTemplate::mistral}) {
        std::vector<ChatMessage> conv = {{"user", "one"}};
        const std::string first = format_chat(t, conv, true, "</s>");
        conv.push_back({"assistant", "two"});
        conv.push_back({"user", "three"});
        const std::string second = format_chat(t, conv, true, "</s>");
        CHECK(second.compare(0, first.size(), first) == 0);
    }
}

TEST_CASE("template names round-trip; mistral refuses a role it has no place for") {
    for (ChatTemplate t : kChatTemplates) CHECK(chat_template_from_name(chat_template_name(t)) == t);
    CHECK_FALSE(chat_template_from_name("llama2").has_value());
    CHECK_FALSE(chat_template_from_name("").has_value());
    const std::vector<ChatMessage> tool = {{"user", "Hi"}, {"tool", "{}"}};
    CHECK_THROWS_WITH_AS(format_chat(ChatTemplate::mistral, tool, true, "</s>"),
                         doctest::Contains("role 'tool'"), std::invalid_argument);
    CHECK(format_chat(ChatTemplate::chatml, tool, false, "") ==
          "<|im_start|>user\nHi<|im_end|>\n<|im_start|>tool\n{}<|im_end|>\n");
}

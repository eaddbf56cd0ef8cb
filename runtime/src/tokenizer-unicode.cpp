// UTF-8 and the byte-level helpers of the tokenizer: strict decoding (ill-formed bytes become
// U+FFFD one byte at a time, as llama.cpp's decoder does), the GPT-2 byte <-> code point map and
// the White_Space set the pre-tokenizer regexes use for \s.
#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer-impl.h"

namespace moerun::tok {

size_t utf8_seq_len(std::string_view s, size_t i) {
    const size_t n = s.size() - i;
    const auto b0 = static_cast<uint8_t>(s[i]);
    if (b0 < 0x80) return 1;
    auto cont = [&](size_t k) { return k < n && (static_cast<uint8_t>(s[i + k]) & 0xC0) == 0x80; };
    if (b0 >= 0xC2 && b0 <= 0xDF) return cont(1) ? 2 : 0;
    if (b0 >= 0xE0 && b0 <= 0xEF) {
        if (!cont(1) || !cont(2)) return 0;
        const auto b1 = static_cast<uint8_t>(s[i + 1]);
        if (b0 == 0xE0 && b1 < 0xA0) return 0;   // overlong
        if (b0 == 0xED && b1 >= 0xA0) return 0;  // surrogate
        return 3;
    }
    if (b0 >= 0xF0 && b0 <= 0xF4) {
        if (!cont(1) || !cont(2) || !cont(3)) return 0;
        const auto b1 = static_cast<uint8_t>(s[i + 1]);
        if (b0 == 0xF0 && b1 < 0x90) return 0;   // overlong
        if (b0 == 0xF4 && b1 >= 0x90) return 0;  // above U+10FFFF
        return 4;
    }
    return 0;  // continuation byte, C0/C1, F5-FF
}

uint32_t utf8_decode(std::string_view s, size_t i, size_t len) {
    const auto b = [&](size_t k) { return static_cast<uint32_t>(static_cast<uint8_t>(s[i + k])); };
    switch (len) {
        case 1:
            return b(0);
        case 2:
            return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
        case 3:
            return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
        default:
            return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
    }
}

void utf8_append(std::string &out, uint32_t cpt) {
    auto put = [&](uint32_t v) { out.push_back(static_cast<char>(static_cast<uint8_t>(v))); };
    if (cpt < 0x80) {
        put(cpt);
    } else if (cpt < 0x800) {
        put(0xC0 | (cpt >> 6));
        put(0x80 | (cpt & 0x3F));
    } else if (cpt < 0x10000) {
        put(0xE0 | (cpt >> 12));
        put(0x80 | ((cpt >> 6) & 0x3F));
        put(0x80 | (cpt & 0x3F));
    } else {
        put(0xF0 | (cpt >> 18));
        put(0x80 | ((cpt >> 12) & 0x3F));
        put(0x80 | ((cpt >> 6) & 0x3F));
        put(0x80 | (cpt & 0x3F));
    }
}

std::vector<uint32_t> utf8_to_cpts(std::string_view s) {
    std::vector<uint32_t> out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        const size_t len = utf8_seq_len(s, i);
        if (len == 0) {
            out.push_back(0xFFFD);
            ++i;
        } else {
            out.push_back(utf8_decode(s, i, len));
            i += len;
        }
    }
    return out;
}

std::string utf8_sanitize(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        const size_t len = utf8_seq_len(s, i);
        if (len == 0) {
            out += "\xEF\xBF\xBD";
            ++i;
        } else {
            out.append(s.substr(i, len));
            i += len;
        }
    }
    return out;
}

size_t spm_char_len(uint8_t lead) {
    static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return kLen[lead >> 4];
}

bool is_whitespace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

namespace {

struct ByteMap {
    std::array<std::string, 256> to_unicode;
    std::array<int16_t, 0x144> from_unicode{};  // code points below U+0144 only

    ByteMap() {
        from_unicode.fill(-1);
        uint32_t next = 0x100;
        for (uint32_t b = 0; b < 256; ++b) {
            const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
            const uint32_t cpt = printable ? b : next++;
            utf8_append(to_unicode[b], cpt);
            from_unicode[cpt] = static_cast<int16_t>(b);
        }
    }
};

const ByteMap &byte_map() {
    static const ByteMap m;
    return m;
}

}  // namespace

const std::string &byte_to_unicode(uint8_t b) {
    return byte_map().to_unicode[b];
}

int unicode_to_byte(uint32_t cpt) {
    return cpt < 0x144 ? byte_map().from_unicode[cpt] : -1;
}

}  // namespace moerun::tok

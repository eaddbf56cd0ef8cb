// A small streaming JSON writer for the CLI's --json outputs: objects, arrays, strings (escaped),
// integers, finite doubles (null otherwise), booleans and null, with commas placed for the caller.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace moerun::cli {

class JsonWriter {
  public:
    JsonWriter &begin_object() { return open('{'); }
    JsonWriter &end_object() { return close('}'); }
    JsonWriter &begin_array() { return open('['); }
    JsonWriter &end_array() { return close(']'); }
    // The key of the next value in the current object.
    JsonWriter &key(std::string_view k) {
        comma();
        string_literal(k);
        out_ += ": ";
        after_key_ = true;
        return *this;
    }
    JsonWriter &value(std::string_view s) {
        comma();
        string_literal(s);
        return *this;
    }
    JsonWriter &value(const char *s) { return value(std::string_view(s)); }
    JsonWriter &value(bool b) { return raw(b ? "true" : "false"); }
    JsonWriter &value(uint64_t v) { return raw(std::to_string(v)); }
    JsonWriter &value(uint32_t v) { return raw(std::to_string(v)); }
    JsonWriter &value(int v) { return raw(std::to_string(v)); }
    JsonWriter &value(double v) {
        if (!std::isfinite(v)) return null();
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.6g", v);
        return raw(buf);
    }
    JsonWriter &null() { return raw("null"); }
    template <class T>
    JsonWriter &array(const std::vector<T> &xs) {
        begin_array();
        for (const T &x : xs) value(x);
        return end_array();
    }
    template <class T>
    JsonWriter &field(std::string_view k, const T &v) {
        key(k);
        if constexpr (requires { v.begin(); } && !std::is_convertible_v<T, std::string_view>)
            return array(v);
        else
            return value(v);
    }
    const std::string &str() const { return out_; }

  private:
    JsonWriter &open(char c) {
        comma();
        out_ += c;
        first_.push_back(true);
        return *this;
    }
    JsonWriter &close(char c) {
        first_.pop_back();
        out_ += c;
        return *this;
    }
    JsonWriter &raw(std::string_view s) {
        comma();
        out_ += s;
        return *this;
    }
    void comma() {
        if (after_key_) {
            after_key_ = false;
            return;
        }
        if (!first_.empty()) {
            if (!first_.back()) out_ += ", ";
            first_.back() = false;
        }
    }
    void string_literal(std::string_view s) {
        out_ += '"';
        for (char ch : s) {
            const auto c = static_cast<unsigned char>(ch);
            if (c == '"' || c == '\\') {
                out_ += '\\';
                out_ += ch;
            } else if (c < 0x20) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", c);
                out_ += buf;
            } else {
                out_ += ch;
            }
        }
        out_ += '"';
    }

    std::string out_;
    std::vector<bool> first_;  // per open container: no element written yet
    bool after_key_ = false;
};

}  // namespace moerun::cli

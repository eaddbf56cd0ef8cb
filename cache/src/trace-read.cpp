// read_trace: loads the whole file and picks the reader by its first bytes ("MRNTRACE",
// "MOETRC01", otherwise CSV text); also the bounds-checked ByteReader and the error helpers
// every reader shares.
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "trace-impl.h"

namespace moerun::cache {
namespace trace_detail {

void fail(const std::string &name, const std::string &where, std::string_view field,
          const std::string &message) {
    throw TraceError(name + ": " + where + ": " + std::string(field) + ": " + message);
}

const uint8_t *ByteReader::take(uint64_t n, std::string_view field, std::string_view what) {
    if (n > remaining())
        fail(pos_, field,
             "unexpected end of file: " + std::string(what) + " needs " + std::to_string(n) +
                 " bytes but only " + std::to_string(remaining()) + " remain (file size " +
                 std::to_string(bytes_.size()) + ")");
    const uint8_t *p = bytes_.data() + pos_;
    pos_ += n;
    return p;
}

std::string printable(std::string_view s, size_t max) {
    std::string out;
    for (size_t i = 0; i < s.size() && i < max; ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out += static_cast<char>(c);
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        }
    }
    if (s.size() > max) out += "...";
    return out;
}

std::string quoted(std::string_view s) {
    std::string out = "\"";  // appended, not "\"" + ...: GCC 12 warns (-Wrestrict) on that
    out += printable(s);
    return out += '"';
}

std::string hex_bytes(std::span<const uint8_t> b) {
    std::string out;
    for (size_t i = 0; i < b.size(); ++i) {
        char buf[4];
        std::snprintf(buf, sizeof buf, "%02x", b[i]);
        if (i) out += ' ';
        out += buf;
    }
    return out;
}

namespace {

bool starts_with(std::span<const uint8_t> b, const char (&magic)[8], size_t n) {
    return b.size() >= n && std::memcmp(b.data(), magic, n) == 0;
}

// True when the start of the file cannot be CSV text: a NUL or another control byte in its
// first 4096 bytes.
bool binary_start(std::span<const uint8_t> b) {
    for (size_t i = 0; i < b.size() && i < 4096; ++i)
        if (b[i] < 0x20 && b[i] != '\t' && b[i] != '\n' && b[i] != '\r') return true;
    return false;
}

}  // namespace
}  // namespace trace_detail

using namespace trace_detail;

Trace read_trace_bytes(std::span<const uint8_t> bytes, const std::string &name) {
    if (bytes.empty()) fail_at(name, 0, "magic", "empty file: not a trace");
    if (starts_with(bytes, kNativeMagic, 8)) return read_native(bytes, name);
    if (starts_with(bytes, kMoetrcMagic, 8)) return read_moetrc(bytes, name);
    const std::string_view head(reinterpret_cast<const char *>(bytes.data()),
                                bytes.size() < 8 ? bytes.size() : 8);
    const auto found = quoted(head) + " (" + hex_bytes(bytes.first(head.size())) + ")";
    if (starts_with(bytes, kMoetrcMagic, 6))
        fail_at(name, 0, "magic", "found " + found + ": unsupported MOETRC version, expected \"MOETRC01\"");
    if (bytes.size() < 8 &&
        (starts_with(bytes, kNativeMagic, bytes.size()) || starts_with(bytes, kMoetrcMagic, bytes.size())))
        fail_at(name, 0, "magic",
                "unexpected end of file: the file is " + std::to_string(bytes.size()) +
                    " bytes, a truncated magic " + found);
    if (binary_start(bytes))
        fail_at(name, 0, "magic",
                "found " + found + ": expected \"MRNTRACE\", \"MOETRC01\" or CSV text; not a trace");
    return read_csv(bytes, name);
}

Trace read_trace(const std::string &path) {
    // A trace is a file: a directory, a pipe (opening a FIFO would wait for a writer; format
    // detection opens it again) or a device such as /dev/zero (no end) is refused before opening.
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) throw TraceError(path + ": cannot open: " + std::strerror(errno));
    if (!S_ISREG(st.st_mode))
        throw TraceError(path + ": " + (S_ISDIR(st.st_mode) ? "a directory" : "not a regular file") +
                         ", expected a routing trace file");
    std::unique_ptr<std::FILE, int (*)(std::FILE *)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
    if (!f) throw TraceError(path + ": cannot open: " + std::strerror(errno));
    // One read of the whole file at its stat size (chunks after that, should it have grown).
    size_t chunk = static_cast<size_t>(st.st_size) + 1;
    std::vector<uint8_t> bytes;
    for (;;) {
        const size_t at = bytes.size();
        bytes.resize(at + chunk);
        const size_t got = std::fread(bytes.data() + at, 1, chunk, f.get());
        bytes.resize(at + got);
        if (got < chunk) break;
        chunk = size_t{1} << 20;
    }
    if (std::ferror(f.get())) throw TraceError(path + ": read error: " + std::strerror(errno));
    return read_trace_bytes(bytes, path);
}

}  // namespace moerun::cache

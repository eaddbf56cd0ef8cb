#include "input-file.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace moerun::cli {

std::string read_input_file(const std::string &path, std::string_view what) {
    const std::string name = path + ": " + std::string(what);
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        throw std::runtime_error(name + ": cannot read: " + std::strerror(errno));
    if (S_ISDIR(st.st_mode)) throw std::runtime_error(name + ": is a directory, expected a file");
    if (S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) > kMaxInputBytes)
        throw std::runtime_error(name + ": " + std::to_string(st.st_size) + " bytes, expected at most " +
                                 std::to_string(kMaxInputBytes));
    std::unique_ptr<std::FILE, int (*)(std::FILE *)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
    if (!f) throw std::runtime_error(name + ": cannot read: " + std::strerror(errno));
    std::string out;
    char buf[1 << 16];
    for (;;) {  // pipes and devices have no size: read to the end, up to the limit
        const size_t got = std::fread(buf, 1, sizeof buf, f.get());
        out.append(buf, got);
        if (out.size() > kMaxInputBytes)
            throw std::runtime_error(name + ": more than " + std::to_string(kMaxInputBytes) +
                                     " bytes, expected at most that");
        if (got < sizeof buf) break;
    }
    if (std::ferror(f.get())) throw std::runtime_error(name + ": read error: " + std::strerror(errno));
    return out;
}

}  // namespace moerun::cli

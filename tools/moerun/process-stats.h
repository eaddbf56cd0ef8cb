// Process memory figures for the CLI's reports (Linux /proc).
#pragma once

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>

namespace moerun::cli {

// Peak resident set size (VmHWM) in bytes; 0 when unavailable.
inline uint64_t peak_rss_bytes() {
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
    return 0;
}

inline std::string format_bytes(uint64_t b) {
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(b);
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", v, units[u]);
    return buf;
}

}  // namespace moerun::cli

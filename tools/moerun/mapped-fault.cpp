// SIGBUS from a mapped file: the GGUF files are read in place through a mapping, and a file that
// another process truncates while it is mapped raises SIGBUS on the next access to a page past its
// new end. That is a fault the reader cannot check for beforehand; this handler turns it into the
// CLI's usual one-line error (naming the model when open_cli_session has set it) and exit status 1,
// instead of a crash. Only async-signal-safe calls in the handler: write and _exit.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "model-setup.h"

namespace moerun::cli {
namespace {

char g_path[4096] = "a mapped GGUF file";

void put(const char *s) {
    size_t n = std::strlen(s);
    while (n > 0) {
        const ssize_t w = ::write(STDERR_FILENO, s, n);
        if (w <= 0) return;
        s += w;
        n -= static_cast<size_t>(w);
    }
}

extern "C" void on_sigbus(int) {
    put("\nmoerun: error: ");
    put(g_path);
    put(": the file was truncated or became unreadable while mapped (SIGBUS); a model file must not "
        "change during a run\n");
    ::_exit(1);
}

}  // namespace

void install_sigbus_handler() {
    struct sigaction sa {};
    sa.sa_handler = on_sigbus;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGBUS, &sa, nullptr);
}

void set_mapped_file_for_errors(const std::string &path) {
    const size_t n = std::min(path.size(), sizeof g_path - 1);
    std::memcpy(g_path, path.data(), n);
    g_path[n] = '\0';
}

}  // namespace moerun::cli

// `moerun inspect FILE`: what a GGUF file holds, without loading any tensor data.
//
// Prints the header (version, alignment, data offset), the model's hyperparameters, the tensor
// table (name, type, shape, size; --no-tensors hides it), all metadata (--metadata) and the
// expert summary: experts per layer, bytes per expert, expert bytes against dense bytes, and
// the bytes one token touches. A structurally broken file is an error (exit 1). A file that
// parses but whose hyperparameters are incomplete is printed as far as possible; that is an
// error too unless the file has no tensors (a vocab-only file).
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "moerun/runtime/gguf.h"
#include "moerun/runtime/model-info.h"
#include "subcommands.h"

namespace moerun::cli {
namespace {

namespace gguf = moerun::gguf;

struct InspectOptions {
    std::string file;
    bool tensors = true;
    bool metadata = false;
};

std::string human_bytes(uint64_t b) {
    static constexpr const char *kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (b < 1024) return std::to_string(b) + " B";
    double v = static_cast<double>(b) / 1024.0;
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < std::size(kUnits)) {
        v /= 1024.0;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, v < 10 ? "%.2f %s" : v < 100 ? "%.1f %s" : "%.0f %s", v, kUnits[u]);
    return buf;
}

std::string percent(uint64_t part, uint64_t whole) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%.1f%%",
                  whole ? 100.0 * static_cast<double>(part) / static_cast<double>(whole) : 0.0);
    return buf;
}

std::string number(double x) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", x);
    return buf;
}

// File text is untrusted: never send control bytes to the terminal. UTF-8 passes through.
std::string escaped(std::string_view s, size_t max = 100) {
    std::string out;
    for (size_t i = 0; i < std::min(s.size(), max); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == '\n') {
            out += "\\n";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    if (s.size() > max) out += "...";
    return out;
}

std::string value_text(const gguf::Value &v, int depth = 0);

std::string array_text(const gguf::Array &a, int depth) {
    constexpr uint64_t kShow = 6;
    std::string s =
        "[" + std::to_string(a.count) + " x " + std::string(gguf::value_type_name(a.elem_type)) + "]";
    if (a.count == 0) return s;
    if (depth >= 2) return s + " [...]";
    s += " [";
    const uint64_t n = std::min(a.count, kShow);
    for (uint64_t i = 0; i < n; ++i) {
        if (i) s += ", ";
        if (a.elem_type == gguf::ValueType::STRING) {
            s += "\"" + escaped(a.strings[i], 40) + "\"";
        } else if (a.elem_type == gguf::ValueType::ARRAY) {
            s += value_text(a.arrays[i], depth + 1);
        } else if (a.elem_type == gguf::ValueType::BOOL) {
            s += a.raw[i] ? "true" : "false";
        } else if (a.elem_type == gguf::ValueType::FLOAT32 || a.elem_type == gguf::ValueType::FLOAT64) {
            s += number(a.get_float(i));
        } else if (a.elem_type == gguf::ValueType::UINT64) {
            uint64_t u = 0;  // may exceed int64: decode the little-endian bytes directly
            for (size_t b = 0; b < 8; ++b) u |= uint64_t{a.raw[i * 8 + b]} << (8 * b);
            s += std::to_string(u);
        } else {
            s += std::to_string(a.get_int(i));
        }
    }
    return s + (a.count > n ? ", ...]" : "]");
}

std::string value_text(const gguf::Value &v, int depth) {
    return std::visit(
        [&](const auto &x) -> std::string {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, uint64_t> || std::is_same_v<T, int64_t>) {
                return std::to_string(x);
            } else if constexpr (std::is_same_v<T, double>) {
                return number(x);
            } else if constexpr (std::is_same_v<T, bool>) {
                return x ? "true" : "false";
            } else if constexpr (std::is_same_v<T, std::string_view>) {
                return "\"" + escaped(x) + "\"";
            } else {
                return array_text(x, depth);
            }
        },
        v.v);
}

std::string shape_text(const gguf::TensorInfo &t) {
    std::string s;
    for (uint32_t j = 0; j < t.n_dims; ++j) s += (j ? " x " : "") + std::to_string(t.ne[j]);
    return s;
}

void print_header(const gguf::GgufFile &f) {
    std::cout << "file:         " << escaped(f.path(), 400) << " (" << human_bytes(f.file_size()) << ", "
              << f.file_size() << " bytes)\n"
              << "version:      GGUF v" << f.version() << "\n"
              << "alignment:    " << f.alignment() << "\n"
              << "data offset:  " << f.data_offset() << "\n"
              << "metadata:     " << f.metadata().size() << " keys\n"
              << "tensors:      " << f.tensors().size() << "\n";
}

void print_model(const runtime::ModelInfo &m) {
    std::cout << "\nmodel:        " << escaped(m.architecture);
    if (!m.name.empty()) std::cout << " \"" << escaped(m.name) << "\"";
    std::cout << "\n  layers " << m.n_layer << ", context " << m.n_ctx_train << ", embedding " << m.n_embd
              << ", feed-forward " << m.n_ff << "\n"
              << "  attention: heads " << m.n_head << " (kv " << m.n_head_kv << "), key/value length "
              << m.n_embd_head_k << "/" << m.n_embd_head_v << "\n";
    if (m.n_expert > 0) {
        std::cout << "  experts: " << m.n_expert << ", used per token " << m.n_expert_used
                  << ", expert feed-forward " << m.expert_ff_length(0);
        if (m.n_expert_shared > 0 || m.n_ff_shexp > 0)
            std::cout << ", shared " << m.n_expert_shared << " (feed-forward " << m.n_ff_shexp << ")";
        std::cout << "\n";
    } else {
        std::cout << "  experts: none (dense model)\n";
    }
    std::cout << "  rope: freq base " << number(m.rope_freq_base) << ", dimensions " << m.n_rot;
    if (!m.rope_scaling.type.empty() || m.rope_scaling.factor != 0) {
        std::cout << ", scaling " << (m.rope_scaling.type.empty() ? "?" : escaped(m.rope_scaling.type))
                  << " x" << number(m.rope_scaling.factor);
        if (m.rope_scaling.original_context_length)
            std::cout << " (original context " << m.rope_scaling.original_context_length << ")";
    }
    std::cout << "\n  norm epsilon: ";
    if (m.rms_eps != 0) std::cout << "rms " << number(m.rms_eps) << (m.norm_eps != 0 ? ", " : "");
    if (m.norm_eps != 0) std::cout << "layer norm " << number(m.norm_eps);
    if (m.rms_eps == 0 && m.norm_eps == 0) std::cout << "not given";
    std::cout << "\n  vocabulary: " << m.n_vocab << " tokens";
    if (!m.tokenizer_model.empty()) std::cout << ", tokenizer " << escaped(m.tokenizer_model);
    if (!m.tokenizer_pre.empty()) std::cout << ", pre-tokenizer " << escaped(m.tokenizer_pre);
    std::cout << "\n";
}

void print_metadata(const gguf::GgufFile &f) {
    std::cout << "\nmetadata:\n";
    size_t width = 0;
    for (const auto &kv : f.metadata()) width = std::max(width, std::min<size_t>(kv.key.size(), 56));
    for (const auto &kv : f.metadata()) {
        std::string key = escaped(kv.key, 56);
        key.resize(std::max(key.size(), width), ' ');
        std::cout << "  " << key << "  " << value_text(kv.value) << "\n";
    }
}

void print_tensors(const gguf::GgufFile &f) {
    size_t w_name = 4;
    size_t w_shape = 5;
    for (const auto &t : f.tensors()) {
        w_name = std::max(w_name, std::min<size_t>(t.name.size(), 64));
        w_shape = std::max(w_shape, shape_text(t).size());
    }
    auto pad = [](std::string s, size_t w) {
        if (s.size() < w) s.resize(w, ' ');
        return s;
    };
    std::cout << "\ntensors:\n  " << pad("name", w_name) << "  " << pad("type", 7) << "  "
              << pad("ne", w_shape) << "  " << pad("size", 10) << "  offset\n";
    for (const auto &t : f.tensors()) {
        std::cout << "  " << pad(escaped(t.name, 64), w_name) << "  "
                  << pad(std::string(quant::type_name(t.type)), 7) << "  " << pad(shape_text(t), w_shape)
                  << "  " << pad(human_bytes(t.size), 10) << "  " << t.file_offset << "\n";
    }
}

void print_experts(const runtime::ModelInfo &m, const runtime::ExpertSummary &s) {
    std::cout << "\nexperts:\n";
    const uint64_t total = s.expert_bytes + s.dense_bytes;
    if (s.layers.empty()) {
        std::cout << "  no stacked expert tensors (blk.N.ffn_*_exps.weight); all " << human_bytes(total)
                  << " of tensor data is dense\n";
        return;
    }
    std::cout << "  MoE layers:       " << s.layers.size() << " of " << m.n_layer << ", " << s.n_expert
              << " experts each, " << m.n_expert_used << " used per token\n";
    std::cout << "  bytes per expert: " << human_bytes(s.min_bytes_per_expert);
    if (s.max_bytes_per_expert != s.min_bytes_per_expert)
        std::cout << " to " << human_bytes(s.max_bytes_per_expert);
    const auto &l0 = s.layers.front();
    std::cout << " (" << (l0.gate ? "gate + " : "") << "up + down; layer " << l0.layer << ": "
              << (l0.gate ? std::string(quant::type_name(l0.gate->type)) + " + " : "")
              << quant::type_name(l0.up->type) << " + " << quant::type_name(l0.down->type) << ")\n";
    std::cout << "  expert bytes:     " << human_bytes(s.expert_bytes) << " ("
              << percent(s.expert_bytes, total) << " of tensor data)\n";
    std::cout << "  dense bytes:      " << human_bytes(s.dense_bytes) << " (" << percent(s.dense_bytes, total)
              << ", always resident)\n";
    uint64_t active = s.dense_bytes;
    for (const auto &l : s.layers) active += std::min(m.n_expert_used, l.n_expert) * l.bytes_per_expert;
    std::cout << "  per token:        " << human_bytes(active) << " touched (dense + " << m.n_expert_used
              << " experts x " << s.layers.size() << " layers)\n";
}

int run_inspect(const InspectOptions &o) {
    const gguf::GgufFile f = gguf::GgufFile::open(o.file);
    print_header(f);

    std::optional<runtime::ModelInfo> info;
    std::optional<gguf::Error> model_error;
    try {
        info = runtime::ModelInfo::from_gguf(f);
    } catch (const gguf::Error &e) {
        model_error = e;
    }
    if (info) {
        print_model(*info);
    } else {
        std::cout << "\nmodel:        hyperparameters incomplete: " << model_error->what() << "\n";
    }
    if (o.metadata) print_metadata(f);
    if (o.tensors && !f.tensors().empty()) print_tensors(f);
    if (info && !f.tensors().empty()) print_experts(*info, runtime::ExpertSummary::from_gguf(f, *info));
    if (f.tensors().empty()) std::cout << "\nno tensors (vocab-only file)\n";

    if (model_error && !f.tensors().empty()) throw *model_error;
    return 0;
}

}  // namespace

Subcommand add_inspect(CLI::App &parent) {
    auto opts = std::make_shared<InspectOptions>();
    CLI::App *cmd = parent.add_subcommand("inspect",
                                          "Show the header, hyperparameters, tensors and expert layout of "
                                          "a GGUF file (reads no tensor data)");
    cmd->add_option("FILE", opts->file, "GGUF model file")->required();
    cmd->add_flag("--tensors,!--no-tensors", opts->tensors, "Print the tensor table (default: on)");
    cmd->add_flag("--metadata", opts->metadata, "Print every metadata key and value");
    return Subcommand{cmd, [opts] { return run_inspect(*opts); }};
}

}  // namespace moerun::cli

// Oracle check of moerun's tokenizer against llama.cpp (label: oracle).
//
//   tokenize-vectors vectors MODEL.gguf INP OUT
//       every string of a llama.cpp test-vector pair (ggml-vocab-*.gguf.inp / .out) must encode to
//       its line of OUT with the tokenizer of MODEL (no special tokens added or parsed) and decode
//       back to itself; used for qwen2, whose vocab GGUF the test-model generator builds.
//   tokenize-vectors cases DIR
//       every DIR/*.tsv written by tokenizer_cases.py: llama.cpp's ids for random / adversarial
//       strings (with the add_special / parse_special of the case) and its detokenization of those
//       ids (plain and with specials rendered; the vocab's space clean-up applied).
// Prints counts per file and in total; exits 1 on any mismatch (the first few are shown).
#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "moerun/runtime/gguf.h"
#include "moerun/runtime/tokenizer.h"

namespace fs = std::filesystem;
using moerun::Tokenizer;
using moerun::gguf::GgufFile;

namespace {

std::string slurp(const fs::path &p) {
    std::ifstream f(p, std::ios::binary);
    if (!f) throw std::runtime_error("cannot read " + p.string());
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

std::vector<std::string> split(const std::string &s, char sep) {
    std::vector<std::string> out;
    size_t pos = 0;
    for (size_t hit; (hit = s.find(sep, pos)) != std::string::npos; pos = hit + 1)
        out.push_back(s.substr(pos, hit - pos));
    out.push_back(s.substr(pos));
    return out;
}

std::vector<int32_t> parse_ids(const std::string &s) {
    std::istringstream in(s);
    std::vector<int32_t> ids;
    for (int32_t id; in >> id;) ids.push_back(id);
    return ids;
}

std::string unhex(const std::string &h) {
    std::string out;
    for (size_t i = 0; i + 1 < h.size(); i += 2)
        out.push_back(static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16)));
    return out;
}

std::string ids_str(const std::vector<int32_t> &ids) {
    std::string s;
    for (int32_t id : ids) {
        if (!s.empty()) s.push_back(' ');
        s.append(std::to_string(id));
    }
    return s;
}

std::string shown(std::string_view s, size_t max = 80) {
    std::string out;
    for (unsigned char c : s.substr(0, max)) {
        if (c == '\n')
            out += "\\n";
        else if (c == '\t')
            out += "\\t";
        else if (c < 0x20 || c == 0x7F) {
            char b[8];
            std::snprintf(b, sizeof b, "\\x%02x", c);
            out += b;
        } else
            out += static_cast<char>(c);
    }
    return s.size() > max ? out + "..." : out;
}

Tokenizer load(const std::string &path) {
    return Tokenizer::from_gguf(GgufFile::open(path));
}

int run_vectors(const std::string &model, const std::string &inp, const std::string &outp) {
    const Tokenizer tok = load(model);
    const std::string raw = slurp(inp);
    const std::string sep = "\n__ggml_vocab_test__\n";
    std::vector<std::string> texts;
    for (size_t pos = 0; pos < raw.size();) {
        const size_t next = raw.find(sep, pos);
        if (next == std::string::npos) {
            texts.push_back(raw.substr(pos));
            break;
        }
        texts.push_back(raw.substr(pos, next - pos));
        pos = next + sep.size();
    }
    std::istringstream lines(slurp(outp));
    std::vector<std::vector<int32_t>> expected;
    for (std::string line; std::getline(lines, line);) expected.push_back(parse_ids(line));
    if (texts.size() != expected.size()) {
        std::printf("FAIL %s: %zu strings, %zu lines\n", inp.c_str(), texts.size(), expected.size());
        return 1;
    }
    int ok = 0, rt = 0, shown_n = 0;
    for (size_t i = 0; i < texts.size(); ++i) {
        const auto got = tok.encode(texts[i], false, false);
        if (got == expected[i])
            ++ok;
        else if (shown_n++ < 5)
            std::printf("  mismatch '%s'\n    expected %s\n    got      %s\n", shown(texts[i]).c_str(),
                        ids_str(expected[i]).c_str(), ids_str(got).c_str());
        if (tok.decode(got) == texts[i])
            ++rt;
        else if (shown_n++ < 5)
            std::printf("  round trip '%s' -> '%s'\n", shown(texts[i]).c_str(),
                        shown(tok.decode(got)).c_str());
    }
    const bool pass = ok == static_cast<int>(texts.size()) && rt == ok;
    std::printf("%s tokenizer vectors %s with %s (pre %s): %d/%zu strings match, round trip %d/%zu\n",
                pass ? "ok  " : "FAIL", fs::path(inp).filename().c_str(), fs::path(model).filename().c_str(),
                std::string(tok.pre()).c_str(), ok, texts.size(), rt, texts.size());
    return pass ? 0 : 1;
}

int run_cases(const std::string &dir) {
    std::vector<fs::path> files;
    for (const auto &e : fs::directory_iterator(dir))
        if (e.path().extension() == ".tsv") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    if (files.empty()) {
        std::printf("FAIL no *.tsv in %s\n", dir.c_str());
        return 1;
    }
    long total = 0, total_enc = 0, total_dec = 0;
    bool all = true;
    for (const auto &file : files) {
        std::istringstream in(slurp(file));
        std::string header;
        std::getline(in, header);
        const auto h = split(header, '\t');
        if (h.size() != 2 || h[0] != "model") throw std::runtime_error(file.string() + ": bad header");
        const Tokenizer tok = load(h[1]);
        long n = 0, enc_ok = 0, dec_ok = 0;
        int shown_n = 0;
        for (std::string line; std::getline(in, line);) {
            if (line.empty()) continue;
            const auto f = split(line, '\t');
            if (f.size() != 6) throw std::runtime_error(file.string() + ": bad line");
            const bool add = f[0] == "1", parse = f[1] == "1";
            const std::string text = unhex(f[2]);
            const auto want = parse_ids(f[3]);
            ++n;
            const auto got = tok.encode(text, add, parse);
            if (got == want)
                ++enc_ok;
            else if (shown_n++ < 6)
                std::printf("  %s: encode(add %d, parse %d) '%s'\n    llama.cpp %s\n    moerun    %s\n",
                            file.filename().c_str(), add, parse, shown(text).c_str(), ids_str(want).c_str(),
                            ids_str(got).c_str());
            const std::string d0 = tok.decode(want, false, true), d1 = tok.decode(want, true, true);
            if (d0 == unhex(f[4]) && d1 == unhex(f[5]))
                ++dec_ok;
            else if (shown_n++ < 6)
                std::printf("  %s: decode %s\n    llama.cpp '%s' / '%s'\n    moerun    '%s' / '%s'\n",
                            file.filename().c_str(), ids_str(want).c_str(), shown(unhex(f[4])).c_str(),
                            shown(unhex(f[5])).c_str(), shown(d0).c_str(), shown(d1).c_str());
        }
        const bool pass = enc_ok == n && dec_ok == n;
        all = all && pass;
        std::printf("%s %-34s pre %-15s encode %ld/%ld, decode %ld/%ld\n", pass ? "ok  " : "FAIL",
                    file.filename().c_str(), std::string(tok.pre()).c_str(), enc_ok, n, dec_ok, n);
        total += n, total_enc += enc_ok, total_dec += dec_ok;
    }
    std::printf("tokenizer vs llama.cpp: %zu vocabs, encode %ld/%ld, decode %ld/%ld\n", files.size(),
                total_enc, total, total_dec, total);
    return all ? 0 : 1;
}

}  // namespace

int main(int argc, char **argv) {
    try {
        const std::vector<std::string> a(argv + 1, argv + argc);
        if (a.size() == 4 && a[0] == "vectors") return run_vectors(a[1], a[2], a[3]);
        if (a.size() == 2 && a[0] == "cases") return run_cases(a[1]);
        std::fprintf(stderr,
                     "usage: tokenize-vectors vectors MODEL.gguf INP OUT\n"
                     "       tokenize-vectors cases DIR\n");
        return 2;
    } catch (const std::exception &e) {
        std::printf("FAIL %s\n", e.what());
        return 1;
    }
}

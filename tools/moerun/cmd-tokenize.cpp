// `moerun tokenize -m FILE (-p TEXT | -f TEXTFILE) [--add-special] [--parse-special] [--pieces]`:
// the token ids of TEXT with FILE's tokenizer, space-separated on one line (with --pieces: one
// token per line, "id<TAB>piece" with control bytes escaped). Only the metadata of FILE is read.
// Tokenizer warnings (e.g. a missing pre-tokenizer) go to stderr.
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "input-file.h"
#include "moerun/runtime/gguf.h"
#include "moerun/runtime/tokenizer.h"
#include "subcommands.h"

namespace moerun::cli {

Subcommand add_tokenize(CLI::App &parent);

namespace {

struct TokenizeOptions {
    std::string model;
    std::string prompt;
    std::string file;
    bool add_special = false;
    bool parse_special = false;
    bool pieces = false;
};

std::string escaped_piece(std::string_view s) {
    std::string out;
    for (unsigned char c : s) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '\n')
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
    return out;
}

int run_tokenize(const TokenizeOptions &o) {
    std::string text = o.prompt;
    if (!o.file.empty()) text = read_input_file(o.file, "prompt file");
    const gguf::GgufFile f = gguf::GgufFile::open(o.model);
    const Tokenizer tok = Tokenizer::from_gguf(f);
    for (const auto &w : tok.warnings()) std::cerr << "moerun: warning: " << w << "\n";
    const std::vector<int32_t> ids = tok.encode(text, o.add_special, o.parse_special);
    if (o.pieces) {
        for (int32_t id : ids) std::cout << id << '\t' << escaped_piece(tok.piece(id)) << '\n';
    } else {
        for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
        std::cout << '\n';
    }
    return 0;
}

}  // namespace

Subcommand add_tokenize(CLI::App &parent) {
    auto o = std::make_shared<TokenizeOptions>();
    CLI::App *app =
        parent.add_subcommand("tokenize", "Print the token ids of a text with a GGUF file's tokenizer");
    app->add_option("-m,--model", o->model, "GGUF file (a model or a vocab-only file)")->required();
    auto *p = app->add_option("-p,--prompt", o->prompt, "text to tokenize");
    auto *fl = app->add_option("-f,--file", o->file, "read the text from this file (bytes as they are)");
    p->excludes(fl);
    fl->excludes(p);
    app->add_flag("--add-special", o->add_special, "add BOS/EOS as the model's metadata says");
    app->add_flag("--parse-special", o->parse_special,
                  "match control-token texts (e.g. <|im_start|>) in the text");
    app->add_flag("--pieces", o->pieces, "one token per line: id and the text it stands for");
    app->callback([p, fl] {
        if (p->count() == 0 && fl->count() == 0) throw CLI::RequiredError("--prompt or --file");
    });
    return {app, [o] { return run_tokenize(*o); }};
}

}  // namespace moerun::cli

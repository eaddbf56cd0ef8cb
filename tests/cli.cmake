# CLI tests (label unit): `moerun` on valid GGUFs (the fuzz seeds) and on the corrupted files in
# tests/data/bad-gguf/ (written by tests/fuzz/make_seeds.py). Each checks the exit status and the
# message through tests/cli-expect.cmake. Include from tests/CMakeLists.txt when tests are built.
set(_cli_expect ${CMAKE_CURRENT_LIST_DIR}/cli-expect.cmake)
set(_cli_seeds ${CMAKE_CURRENT_LIST_DIR}/fuzz/corpus/gguf)
set(_cli_bad ${CMAKE_CURRENT_LIST_DIR}/data/bad-gguf)

# moerun_cli_test(NAME ARGS <a|b|...> RC <n> [STDOUT <regex>] [STDERR <regex>] [COPY <src|dst>] [INPUT <file>])
function(moerun_cli_test name)
  cmake_parse_arguments(T "" "ARGS;RC;STDOUT;STDERR;COPY;INPUT" "" ${ARGN})
  set(defs -DCMD=$<TARGET_FILE:moerun> "-DARGS=${T_ARGS}" -DEXPECT_RC=${T_RC})
  if(DEFINED T_COPY)
    list(APPEND defs "-DCOPY=${T_COPY}")
  endif()
  if(DEFINED T_INPUT)
    list(APPEND defs "-DINPUT=${T_INPUT}")
  endif()
  if(DEFINED T_STDOUT)
    list(APPEND defs "-DSTDOUT_REGEX=${T_STDOUT}")
  endif()
  if(DEFINED T_STDERR)
    list(APPEND defs "-DSTDERR_REGEX=${T_STDERR}")
  endif()
  add_test(NAME cli-${name} COMMAND ${CMAKE_COMMAND} ${defs} -P ${_cli_expect})
  set_tests_properties(cli-${name} PROPERTIES LABELS unit TIMEOUT 30)
endfunction()

moerun_cli_test(version ARGS --version RC 0 STDOUT "^moerun [0-9]+\\.[0-9]+\\.[0-9]+")
moerun_cli_test(help ARGS --help RC 0 STDOUT "inspect")
moerun_cli_test(no-subcommand ARGS "" RC 1 STDERR "subcommand is required")
moerun_cli_test(unknown-option ARGS "inspect|--bogus|x.gguf" RC 1 STDERR "--bogus")
moerun_cli_test(inspect-missing-file ARGS "inspect|${_cli_bad}/no-such-file.gguf" RC 1
                STDERR "no-such-file.gguf: cannot open: No such file or directory")
moerun_cli_test(inspect-directory ARGS "inspect|${_cli_bad}" RC 1 STDERR "not a regular file")

# Valid files.
moerun_cli_test(inspect-moe-qwen3moe ARGS "inspect|${_cli_seeds}/moe-qwen3moe-f16.gguf" RC 0
                STDOUT "GGUF v3.*qwen3moe.*blk.1.ffn_down_exps.weight +F16 +4 x 8 x 4.*MoE layers: +2 of 2, 4 experts each")
moerun_cli_test(inspect-moe-olmoe ARGS "inspect|--no-tensors|${_cli_seeds}/moe-olmoe-q4_0.gguf" RC 0
                STDOUT "bytes per expert: 1.69 KiB.*Q4_0")
moerun_cli_test(inspect-moe-align64-v2 ARGS "inspect|--metadata|${_cli_seeds}/moe-qwen2moe-align64.gguf" RC 0
                STDOUT "GGUF v2.*alignment: +64.*shared 1.*general.alignment +64")
moerun_cli_test(inspect-vocab ARGS "inspect|${_cli_seeds}/vocab-llama.gguf" RC 0 STDOUT "vocabulary: 6 tokens.*no tensors")
# A well-formed GGUF that is not a model: everything is printed, then the missing key is the error.
moerun_cli_test(inspect-not-a-model ARGS "inspect|--metadata|${_cli_seeds}/all-types-v3.gguf" RC 1
                STDOUT "a.nested_str" STDERR "testarch.block_count: required key is missing")

# Corrupted files: exit 1 with a message naming the offset, the field and the problem.
set(_cli_bad_cases
  "empty.gguf=offset 0: magic: file is 0 bytes, too short"
  "truncated.gguf=offset 1000: kv.20. 'tokenizer.ggml.merges' type: unexpected end of file"
  "truncated-data.gguf=offset 1076: tensor.0. 'token_embd.weight' offset: data .* lies outside the file .2000 bytes"
  "bad-magic.gguf=offset 0: magic: expected \"GGUF\".*not a GGUF file"
  "version-1.gguf=offset 4: version: GGUF v1 is not supported"
  "big-endian.gguf=offset 4: version: .*big-endian GGUF file"
  "huge-tensor-count.gguf=offset 8: tensor_count: 18446744073709551615 tensors cannot fit in the 168 remaining bytes"
  "huge-kv-count.gguf=offset 16: kv_count: 4611686018427387904 key-value pairs cannot fit"
  "huge-string.gguf=offset 48: kv.0. 'general.name': string length 1152921504606846976 exceeds the 104 remaining bytes"
  "tensor-offset-out-of-file.gguf=offset 101: tensor.0. 't.weight' offset: data .* lies outside the file"
  "tensor-offset-misaligned.gguf=offset 101: tensor.0. 't.weight' offset: 3 is not a multiple of the alignment 32"
  "unknown-tensor-type.gguf=offset 97: tensor.0. 't.weight' type: unknown tensor type id 4"
  "bad-block-size.gguf=offset 89: tensor.0. 't.weight' ne.0.: 33 is not a multiple of the Q8_0 block size 32"
  "five-dims.gguf=offset 85: tensor.0. 't.weight' n_dims: 5 dimensions, expected 1 to 4"
  "duplicate-tensor.gguf=offset 109: tensor.1. 't.weight': duplicate tensor name"
  "element-overflow.gguf=offset 85: tensor.0. 't.weight' shape: element count .* overflows int64"
  "expert-count-mismatch.gguf=offset [0-9]+: tensor 'blk.0.ffn_gate_exps.weight': holds 4 experts .ne.2.. but qwen3moe.expert_count = 8"
)
foreach(case ${_cli_bad_cases})
  string(FIND "${case}" "=" eq)
  string(SUBSTRING "${case}" 0 ${eq} file)
  math(EXPR start "${eq} + 1")
  string(SUBSTRING "${case}" ${start} -1 regex)
  string(REPLACE ".gguf" "" name "${file}")
  moerun_cli_test(inspect-bad-${name} ARGS "inspect|${_cli_bad}/${file}" RC 1
                  STDERR "^moerun: error: [^\n]*${file}: ${regex}")
endforeach()

# `moerun run` on files it must refuse, with the reason (no model weights needed).
moerun_cli_test(run-unsupported-arch ARGS "run|-m|${MOERUN_SHARED_DATA}/vocab/ggml-vocab-gpt-2.gguf|-p|hi" RC 1
                STDERR "architecture 'gpt2' is not supported")
moerun_cli_test(run-missing-expert-key ARGS "run|-m|${_cli_seeds}/vocab-llama.gguf|-p|hi" RC 1
                STDERR "llama.expert_count: missing or 0")
moerun_cli_test(run-truncated ARGS "run|-m|${_cli_bad}/truncated.gguf|-p|hi" RC 1 STDERR "offset [0-9]+")
# KV cache types: f16 and f32 only, under llama.cpp's names (-ctk / -ctv) too.
moerun_cli_test(run-bad-cache-type ARGS "run|-m|${_cli_seeds}/moe-olmoe-q4_0.gguf|-p|hi|-ctk|q8_0" RC 1
                STDERR "cache-type-k: q8_0 not in \\{f16,f32\\}")
moerun_cli_test(run-bad-cache-type-v ARGS "run|-m|${_cli_seeds}/moe-olmoe-q4_0.gguf|-p|hi|--cache-type-v|bf16" RC 1
                STDERR "cache-type-v: bf16 not in")
moerun_cli_test(chat-unknown-template ARGS "chat|-m|${_cli_seeds}/moe-olmoe-q4_0.gguf|--chat-template|llama2" RC 1
                STDERR "--chat-template: llama2 not in \\{chatml,tulu,mistral\\}")
# Backends by name only (same-tokens.sh runs the device pass and its errors on real models).
moerun_cli_test(run-bad-backend ARGS "run|-m|${_cli_seeds}/moe-olmoe-q4_0.gguf|-p|hi|--backend|tpu" RC 1
                STDERR "backend: tpu not in")

# Inputs that are not what they should be: a directory as the prompt file, a device with no end
# as a trace (more with a model in tests/CMakeLists.txt, cli-model-*).
moerun_cli_test(tokenize-file-directory ARGS "tokenize|-m|${_cli_seeds}/vocab-llama.gguf|-f|${_cli_bad}" RC 1
                STDERR "bad-gguf: prompt file: is a directory")
moerun_cli_test(profile-replay-dev-zero ARGS "profile|replay|/dev/zero" RC 1
                STDERR "/dev/zero: not a regular file, expected a routing trace file")
moerun_cli_test(profile-replay-directory ARGS "profile|replay|${_cli_bad}" RC 1
                STDERR "bad-gguf: a directory, expected a routing trace file")

# Oracle: moerun's tokenizer against llama.cpp (label: oracle; needs MOERUN_PYTHON and the test models).
#
#   oracle-tokenizer-qwen2-vectors  llama.cpp's ggml-vocab-qwen2 vectors with the qwen2 vocab of the
#                                   generated qwen3moe and qwen2moe test models (FIXTURES_REQUIRED test_models)
#   oracle-tokenizer-cases-gen      fixture "tokenizer_cases": tokenizer_cases.py asks llama.cpp to tokenize
#                                   random / adversarial strings with every shipped vocab GGUF, the
#                                   qwen3moe / olmoe / mixtral test models, and Qwen's vocab under each
#                                   pre-tokenizer name moerun supports (--pre-variants-of)
#   oracle-tokenizer-llama          tokenize-vectors compares ids and detokenization with those
# The shipped vectors of the other vocabs are unit tests (tests/unit/test-tokenizer-vocab.cpp).

add_executable(tokenize-vectors ${CMAKE_CURRENT_LIST_DIR}/tokenize-vectors.cpp)
target_link_libraries(tokenize-vectors PRIVATE moerun_runtime moerun_warnings)

set(_moerun_tok_models ${CMAKE_BINARY_DIR}/test-models)
set(_moerun_tok_vectors ${MOERUN_SHARED_DATA}/vocab/ggml-vocab-qwen2.gguf)

foreach(_arch qwen3moe qwen2moe)
  add_test(NAME oracle-tokenizer-qwen2-vectors-${_arch}
           COMMAND tokenize-vectors vectors ${_moerun_tok_models}/${_arch}-Q8_0.gguf
                   ${_moerun_tok_vectors}.inp ${_moerun_tok_vectors}.out)
  set_tests_properties(oracle-tokenizer-qwen2-vectors-${_arch} PROPERTIES
      FIXTURES_REQUIRED test_models LABELS oracle TIMEOUT 120)
endforeach()

file(GLOB _moerun_tok_vocabs ${MOERUN_SHARED_DATA}/vocab/ggml-vocab-*.gguf)
set(_moerun_tok_cases ${CMAKE_BINARY_DIR}/oracle/tokenizer)
add_test(NAME oracle-tokenizer-cases-gen
         COMMAND ${MOERUN_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/tokenizer_cases.py --out-dir ${_moerun_tok_cases}
                 --pre-variants-of ${_moerun_tok_models}/qwen3moe-Q8_0.gguf ${_moerun_tok_vocabs}
                 ${_moerun_tok_models}/qwen3moe-Q8_0.gguf ${_moerun_tok_models}/olmoe-Q8_0.gguf
                 ${_moerun_tok_models}/mixtral-Q8_0.gguf)
set_tests_properties(oracle-tokenizer-cases-gen PROPERTIES
    FIXTURES_SETUP tokenizer_cases FIXTURES_REQUIRED test_models LABELS oracle TIMEOUT 600
    ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")

add_test(NAME oracle-tokenizer-llama COMMAND tokenize-vectors cases ${_moerun_tok_cases})
set_tests_properties(oracle-tokenizer-llama PROPERTIES
    FIXTURES_REQUIRED "test_models;tokenizer_cases" LABELS oracle TIMEOUT 300)

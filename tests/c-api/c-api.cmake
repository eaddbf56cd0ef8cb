# The C API (runtime/include/moerun.h) from C, linked against libmoerun.so, on a test model:
# error codes and messages, tokenizing, generate against eval, cancellation, stats, and the same
# tokens behind a small budget. Label unit (seconds); needs the test models.
add_executable(test-c-api ${CMAKE_CURRENT_LIST_DIR}/test-c-api.c)
set_target_properties(test-c-api PROPERTIES C_STANDARD 11 C_STANDARD_REQUIRED ON C_EXTENSIONS OFF)
target_compile_options(test-c-api PRIVATE -Wall -Wextra -Wpedantic -Werror)
target_link_libraries(test-c-api PRIVATE moerun_c)
foreach(model olmoe-Q4_K qwen2moe-Q4_K_M mixtral-Q8_0 qwen3moe-Q6_K)
  add_test(NAME c-api-${model} COMMAND test-c-api ${MOERUN_TEST_MODELS_DIR}/${model}.gguf
                                       ${CMAKE_CURRENT_SOURCE_DIR}/data/bad-gguf/bad-magic.gguf)
  set_tests_properties(c-api-${model} PROPERTIES FIXTURES_REQUIRED test_models LABELS unit TIMEOUT 300)
endforeach()

# Against llama.cpp (label oracle): the F32 test models of every architecture, logits within 1e-5
# and the same 32-token greedy continuation (as oracle-logits-<arch>-F32), through the C API.
if(COMMAND moerun_logits_test)
  add_executable(c-api-compare ${CMAKE_CURRENT_LIST_DIR}/c-api-compare.c)
  set_target_properties(c-api-compare PROPERTIES C_STANDARD 11 C_STANDARD_REQUIRED ON C_EXTENSIONS OFF)
  target_compile_options(c-api-compare PRIVATE -Wall -Wextra -Wpedantic -Werror)
  target_link_libraries(c-api-compare PRIVATE moerun_c m)
  foreach(arch qwen3moe qwen2moe olmoe mixtral)
    add_test(NAME oracle-c-api-${arch}-F32
             COMMAND ${MOERUN_PYTHON} ${PROJECT_SOURCE_DIR}/tests/oracle/check_logits.py
                     --model ${MOERUN_TEST_MODELS_DIR}/${arch}-F32.gguf --compare $<TARGET_FILE:c-api-compare>
                     --work ${CMAKE_BINARY_DIR}/oracle/c-api -- --tol 1e-5 --threads 1)
    set_tests_properties(oracle-c-api-${arch}-F32 PROPERTIES LABELS oracle TIMEOUT 600 FIXTURES_REQUIRED test_models
                         ENVIRONMENT "${_moerun_py_env}")
  endforeach()
  # moerun_chat_apply_template against llama_chat_apply_template on random conversations: chatml on
  # every model, mistral = llama.cpp's llama2 on Mixtral's vocabulary, and each GGUF's own
  # tokenizer.chat_template as llama.cpp reads it (check_chat_template.py).
  add_test(NAME oracle-c-api-chat-template
           COMMAND ${MOERUN_PYTHON} ${PROJECT_SOURCE_DIR}/tests/oracle/check_chat_template.py
                   --lib $<TARGET_FILE:moerun_c> --seed 1
                   ${MOERUN_TEST_MODELS_DIR}/qwen3moe-F32.gguf ${MOERUN_TEST_MODELS_DIR}/qwen2moe-F32.gguf
                   ${MOERUN_TEST_MODELS_DIR}/olmoe-F32.gguf ${MOERUN_TEST_MODELS_DIR}/mixtral-F32.gguf)
  set_tests_properties(oracle-c-api-chat-template PROPERTIES LABELS oracle TIMEOUT 300
                       FIXTURES_REQUIRED test_models ENVIRONMENT "${_moerun_py_env}")
endif()

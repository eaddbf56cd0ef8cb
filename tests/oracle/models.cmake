# Test models and llama.cpp oracle checks (label: oracle). Included from tests/CMakeLists.txt when
# MOERUN_PYTHON (the project venv's python: gguf, numpy, llama-cpp-python) is set.
#
#   oracle-test-models         fixture "test_models": tools/python/gen_model.py --matrix writes every
#                              architecture (qwen3moe, qwen2moe, olmoe, mixtral) x (F32, F16, Q8_0, Q4_K,
#                              Q6_K, Q4_K_M) into ${MOERUN_TEST_MODELS_DIR} with manifest.json; files whose
#                              stamp (hash of generator sources + arguments + vocab + llama.cpp version)
#                              is unchanged are not rebuilt, so a second run takes seconds
#   oracle-llama-loads-models  llama.cpp loads and runs every test model (check_models_load.py)
#   oracle-gen-random-blocks   the generator's random quantized blocks (presets) decode, with gguf-py, to
#                              zero-mean values of the requested std, for every type it draws
#   oracle-qwen2-vocab         qwen2 vocab built from qwen3_tokenizer.json reproduces llama.cpp's test
#                              vectors; shipped llama-spm / gpt-neox (and other) vocabs (check_vocab.py)
#
# C++ tests that need the models: FIXTURES_REQUIRED test_models, files in ${MOERUN_TEST_MODELS_DIR}
# (see manifest.json there), logits references via tests/oracle/llama_oracle.py + oracle_file.h.

set(MOERUN_TEST_MODELS_DIR ${CMAKE_BINARY_DIR}/test-models CACHE PATH
    "Folder of the generated test models (another build's may be shared: files are regenerated only when stale)")
set(_moerun_oracle_dir ${CMAKE_CURRENT_LIST_DIR})
set(_moerun_gen_model ${CMAKE_CURRENT_LIST_DIR}/../../tools/python/gen_model.py)
set(_moerun_py_env PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1)
if(MOERUN_SHARED_DATA)
  # the generator and checks read vocabularies from here (default: ../shared/data of the repo)
  list(APPEND _moerun_py_env MOERUN_SHARED_DATA=${MOERUN_SHARED_DATA})
endif()

add_test(NAME oracle-test-models
         COMMAND ${MOERUN_PYTHON} ${_moerun_gen_model} --matrix --out-dir ${MOERUN_TEST_MODELS_DIR} --threads 2)
set_tests_properties(oracle-test-models PROPERTIES
    FIXTURES_SETUP test_models LABELS oracle TIMEOUT 1200 PROCESSORS 2 ENVIRONMENT "${_moerun_py_env}")

add_test(NAME oracle-gen-random-blocks
         COMMAND ${MOERUN_PYTHON} ${_moerun_oracle_dir}/check_random_blocks.py)
set_tests_properties(oracle-gen-random-blocks PROPERTIES LABELS oracle TIMEOUT 300 ENVIRONMENT "${_moerun_py_env}")

add_test(NAME oracle-llama-loads-models
         COMMAND ${MOERUN_PYTHON} ${_moerun_oracle_dir}/check_models_load.py
                 --models-dir ${MOERUN_TEST_MODELS_DIR} --threads 1)
set_tests_properties(oracle-llama-loads-models PROPERTIES
    FIXTURES_REQUIRED test_models LABELS oracle TIMEOUT 900 ENVIRONMENT "${_moerun_py_env}")

add_test(NAME oracle-qwen2-vocab
         COMMAND ${MOERUN_PYTHON} ${_moerun_oracle_dir}/check_vocab.py
                 --work-dir ${CMAKE_BINARY_DIR}/oracle-vocab --all)
set_tests_properties(oracle-qwen2-vocab PROPERTIES
    LABELS oracle TIMEOUT 300 ENVIRONMENT "${_moerun_py_env}")

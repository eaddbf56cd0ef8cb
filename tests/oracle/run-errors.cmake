# `moerun run` on a real test model with bad requests, and what a run reports (label oracle: needs
# the test_models fixture).
# Invalid UTF-8 in a prompt is defined behaviour of the tokenizer (test-tokenizer-vocab covers it).
set(_run_model ${MOERUN_TEST_MODELS_DIR}/olmoe-Q8_0.gguf)
moerun_cli_test(run-prompt-too-long ARGS "run|-m|${_run_model}|-p|one two three four five six seven|-c|4" RC 1
                STDERR "does not fit the context of 4")
file(WRITE ${CMAKE_BINARY_DIR}/empty-prompt.txt "")  # an empty argument would not survive the command line
moerun_cli_test(run-empty-prompt ARGS "run|-m|${_run_model}|-f|${CMAKE_BINARY_DIR}/empty-prompt.txt" RC 1
                STDERR "the prompt is empty")
moerun_cli_test(run-zero-context ARGS "run|-m|${_run_model}|-p|hi|-c|0" RC 1 STDERR "ctx-size")
# A one-token prompt is a prompt in the timings (it was counted as a decode step), and -n 3 is two
# decode steps after it (the last token is sampled, not evaluated).
moerun_cli_test(run-one-token-prompt ARGS "run|-m|${_run_model}|-p|a|--no-special|-n|3|--ignore-eos" RC 0
                STDERR "prompt 1 tokens in [^;]*; decode 2 tokens")
foreach(_name run-prompt-too-long run-empty-prompt run-zero-context run-one-token-prompt)
  set_tests_properties(cli-${_name} PROPERTIES LABELS oracle FIXTURES_REQUIRED test_models)
endforeach()

# A file with a tensor type moerun has no kernels for (MXFP4 experts, written by llama.cpp's own
# quantizer) is refused at load, naming the file, the tensor's offset, the tensor and its type.
set(_mxfp4_model ${CMAKE_BINARY_DIR}/test-models-llamaq/olmoe-MXFP4_MOE.gguf)
add_test(NAME oracle-llamaq-mxfp4-gen
         COMMAND ${MOERUN_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/llama_oracle.py quantize -m ${MOERUN_TEST_MODELS_DIR}/olmoe-F32.gguf
                 --ftype MXFP4_MOE -o ${_mxfp4_model})
set_tests_properties(oracle-llamaq-mxfp4-gen PROPERTIES LABELS oracle FIXTURES_REQUIRED test_models
                     FIXTURES_SETUP mxfp4_model ENVIRONMENT "${_moerun_py_env}")
moerun_cli_test(run-unsupported-tensor-type ARGS "run|-m|${_mxfp4_model}|-p|hi" RC 1
                STDERR "olmoe-MXFP4_MOE.gguf: offset [0-9]+: blk.0.ffn_[a-z]+_exps.weight: tensor type MXFP4 is not supported yet")
set_tests_properties(cli-run-unsupported-tensor-type PROPERTIES LABELS oracle FIXTURES_REQUIRED mxfp4_model)

# Oracle: quant/ reference dequantization and quantization against gguf-py (gguf.quants).
# quant_blocks.py writes the blocks and gguf-py's results; test-quant-oracle checks them bit-exactly.
set(MOERUN_QUANT_ORACLE_DIR ${CMAKE_BINARY_DIR}/oracle/quant)

add_executable(test-quant-oracle ${CMAKE_CURRENT_LIST_DIR}/test-quant-oracle.cpp)
target_link_libraries(test-quant-oracle PRIVATE moerun_quant moerun_doctest_main doctest::doctest moerun_warnings)

add_test(NAME oracle-quant-blocks-gen
         COMMAND ${MOERUN_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/quant_blocks.py ${MOERUN_QUANT_ORACLE_DIR})
set_tests_properties(oracle-quant-blocks-gen PROPERTIES FIXTURES_SETUP quant_blocks LABELS oracle)

add_test(NAME oracle-quant COMMAND test-quant-oracle)
set_tests_properties(oracle-quant PROPERTIES
  FIXTURES_REQUIRED quant_blocks LABELS oracle
  ENVIRONMENT "MOERUN_QUANT_ORACLE_DIR=${MOERUN_QUANT_ORACLE_DIR}")

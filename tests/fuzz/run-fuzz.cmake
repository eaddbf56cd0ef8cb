# Runs the fuzzer NAME for SECONDS on a fresh copy of the seed corpus (plus the saved crashes,
# read only); fails with the path of the crashing input when libFuzzer finds one. Invoked by the
# <NAME>-60s ctests (REPLAY: the replay test that keeps saved crashes fixed):
#   cmake -DNAME=.. -DREPLAY=.. -DFUZZER=.. -DSEEDS=.. -DCRASHES=.. -DDICT=.. -DWORK=.. -DSECONDS=.. -P run-fuzz.cmake
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}/corpus" "${WORK}/artifacts")
file(GLOB seeds "${SEEDS}/*")
file(COPY ${seeds} DESTINATION "${WORK}/corpus")
execute_process(
  COMMAND "${FUZZER}" "${WORK}/corpus" "${CRASHES}" -max_total_time=${SECONDS} -max_len=65536 -timeout=10
          -rss_limit_mb=2048 -dict=${DICT} -artifact_prefix=${WORK}/artifacts/ -print_final_stats=1
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(GLOB found "${WORK}/artifacts/*")
  message(FATAL_ERROR "${NAME} failed (${rc}); inputs: ${found}\n"
                      "Fix the reader, then copy each input into tests/fuzz/crashes/ so ${REPLAY} keeps it fixed.")
endif()

# Runs one case of emu-checks and checks its output:
#   cmake -DCMD=<exe> -DCASE=<name> -DREGEX=<stdout+stderr regex> -DCRASH=ON|OFF -P expect.cmake
# CRASH=ON: the case must stop the process (the emulator's fatal message); OFF: exit 0.
execute_process(COMMAND "${CMD}" "${CASE}" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(all "${out}${err}")
set(summary "case ${CASE}: exit status ${rc}\n--- output ---\n${all}")
if(CRASH AND rc EQUAL 0)
  message(FATAL_ERROR "expected the emulator to stop the process\n${summary}")
endif()
if(NOT CRASH AND NOT rc EQUAL 0)
  message(FATAL_ERROR "expected exit status 0\n${summary}")
endif()
if(NOT all MATCHES "${REGEX}")
  message(FATAL_ERROR "output does not match '${REGEX}'\n${summary}")
endif()
message(STATUS "${all}")

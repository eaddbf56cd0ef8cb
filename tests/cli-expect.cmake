# Runs one command and checks its exit status and output; used by tests/cli.cmake as
#   cmake -DCMD=<exe> -DARGS=<arg|arg|...> -DEXPECT_RC=<n> [-DSTDOUT_REGEX=..] [-DSTDERR_REGEX=..] [-DCOPY=src|dst]
#         [-DINPUT=<file>] -P cli-expect.cmake
# (INPUT: the command's standard input; otherwise it reads an empty one.)
# A non-zero expectation also requires a stderr line starting "moerun: error: " and excludes crashes
# (a signal shows up as a non-numeric result such as "Segmentation fault").
string(REPLACE "|" ";" args "${ARGS}")
# -DCOPY=<src>|<dst>: a scratch copy for a command that may write over its input.
if(DEFINED COPY)
  string(REPLACE "|" ";" copy "${COPY}")
  execute_process(COMMAND ${CMAKE_COMMAND} -E copy ${copy})
endif()
if(NOT DEFINED INPUT)
  set(INPUT /dev/null)
endif()
execute_process(COMMAND "${CMD}" ${args} INPUT_FILE ${INPUT} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(summary "command: ${CMD} ${args}\nexit status: ${rc}\n--- stdout ---\n${out}\n--- stderr ---\n${err}")
if(NOT rc STREQUAL "${EXPECT_RC}")
  message(FATAL_ERROR "expected exit status ${EXPECT_RC}\n${summary}")
endif()
if(NOT EXPECT_RC EQUAL 0 AND NOT err MATCHES "(^|\n)moerun: error: ")
  message(FATAL_ERROR "expected a line of stderr to start with 'moerun: error: '\n${summary}")
endif()
if(DEFINED STDOUT_REGEX AND NOT out MATCHES "${STDOUT_REGEX}")
  message(FATAL_ERROR "stdout does not match '${STDOUT_REGEX}'\n${summary}")
endif()
if(DEFINED STDERR_REGEX AND NOT err MATCHES "${STDERR_REGEX}")
  message(FATAL_ERROR "stderr does not match '${STDERR_REGEX}'\n${summary}")
endif()

# Runs one command that must succeed and write FILE, then checks FILE's content; used by
# tests/cli-profile.cmake as
#   cmake -DCMD=<exe> -DARGS=<arg|arg|...> -DFILE=<path> -DFILE_REGEX=<regex> -P cli-file-expect.cmake
string(REPLACE "|" ";" args "${ARGS}")
file(REMOVE "${FILE}")
execute_process(COMMAND "${CMD}" ${args} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc STREQUAL "0")
  message(FATAL_ERROR "expected exit status 0, got ${rc}\ncommand: ${CMD} ${args}\n${out}\n${err}")
endif()
if(NOT EXISTS "${FILE}")
  message(FATAL_ERROR "${FILE} was not written\ncommand: ${CMD} ${args}\n${out}")
endif()
file(READ "${FILE}" content)
if(NOT content MATCHES "${FILE_REGEX}")
  message(FATAL_ERROR "${FILE} does not match '${FILE_REGEX}'\ncommand: ${CMD} ${args}")
endif()

# Rewrites a CUDA source for the emulator: each launch `kernel<<<grid, block, shared, stream>>>(args)`
# (a statement starting a line; the launch brackets may start the next) becomes `::moerun_emu::launch("kernel", kernel, grid, block,
# shared, stream)(args)`; lines keep their numbers (#line names the original file).
#   cmake -DIN=file.cu -DOUT=file.cpp -P transform.cmake
file(READ "${IN}" src)
# a launch whose brackets start the next line: joined for the match, the line break put back after
string(REGEX REPLACE "\n([ \t]*)<<<" "<<<@MOERUN_NL@\\1" src "${src}")
string(REGEX REPLACE "\n([ \t]*)([A-Za-z_][^\n]*)<<<" "\n\\1::moerun_emu::launch(\"\\2\", \\2, " src "${src}")
string(REPLACE "@MOERUN_NL@" "\n" src "${src}")
string(REPLACE ">>>" ")" src "${src}")
string(FIND "${src}" "<<<" left)
if(NOT left EQUAL -1)
  message(FATAL_ERROR "${IN}: a kernel launch the emulator's rewrite does not understand")
endif()
file(WRITE "${OUT}.tmp" "#line 1 \"${IN}\"\n${src}")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")

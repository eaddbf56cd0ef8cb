# moerun_warnings: an interface target every moerun target links, carrying the warning set.
add_library(moerun_warnings INTERFACE)
target_compile_options(moerun_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX,C>:-Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion
                              -Wnon-virtual-dtor -Wcast-align -Wnull-dereference -Wformat=2>
  $<$<AND:$<BOOL:${MOERUN_WERROR}>,$<COMPILE_LANGUAGE:CXX,C>>:-Werror>
  $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>
  $<$<AND:$<BOOL:${MOERUN_WERROR}>,$<COMPILE_LANGUAGE:CUDA>>:-Werror=all-warnings -Xcompiler=-Werror>)

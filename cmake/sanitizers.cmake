# MOERUN_SANITIZE=address;undefined adds the sanitizers to every target compiled after this point.
if(MOERUN_SANITIZE)
  list(JOIN MOERUN_SANITIZE "," _san)
  add_compile_options($<$<COMPILE_LANGUAGE:CXX,C>:-fsanitize=${_san}> $<$<COMPILE_LANGUAGE:CXX,C>:-fno-omit-frame-pointer>
                      $<$<COMPILE_LANGUAGE:CXX,C>:-fno-sanitize-recover=all>)
  add_link_options(-fsanitize=${_san})
endif()

# Warnings as errors for our own targets only (third-party headers are SYSTEM includes).
function(vramcache_target_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Werror -Wno-missing-field-initializers>
    $<$<COMPILE_LANGUAGE:CUDA>:--Werror=all-warnings -Xcompiler=-Wall,-Wextra,-Werror>)
  if(VRAMCACHE_TSAN)
    target_compile_definitions(${target} PRIVATE VRAMCACHE_TSAN=1)
  endif()
endfunction()

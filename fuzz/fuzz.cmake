# Fuzzing: libFuzzer targets for the parsers of text that anyone may have written (metadata,
# durations, keys, URLs, times, GitHub comments). Built only with clang and -DTL_FUZZ=ON.
#
# The library sources the targets call are compiled once more, into tl_fuzz_core, with the
# fuzzer's coverage instrumentation and the same sanitizers. ctest gets two tests per target,
# labelled `fuzz`:
#   fuzz_<t>              fuzzes for TL_FUZZ_SECONDS, starting from the seeds in
#                         fuzz/corpus/<t>/ (read only); new inputs go to <build>/fuzz/corpus/<t>/,
#                         a crashing input to <build>/fuzz/artifacts/<t>/.
#   fuzz_<t>_regressions  runs every input kept in fuzz/regressions/<t>/ once.
option(TL_FUZZ "Build the libFuzzer targets (clang only)" OFF)
set(TL_FUZZ_SECONDS 20 CACHE STRING "How long each fuzz test of ctest fuzzes, in seconds")
if(NOT TL_FUZZ)
  return()
endif()
if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(WARNING "TL_FUZZ needs clang (libFuzzer): configure with CC=clang. "
                  "The fuzz targets are not built.")
  return()
endif()

set(TL_FUZZ_SANITIZERS address,undefined)
set(TL_FUZZ_CFLAGS -fno-sanitize-recover=all -fno-omit-frame-pointer -g)

set(TL_FUZZ_CORE src/alloc.c src/clock.c src/error.c src/json.c src/record.c src/util.c)
set(TL_FUZZ_TARGETS meta duration key url time)
# The GitHub comment parser is pure text handling (no libcurl): fuzzed when its source is here.
if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/src/stores/github_marker.c
   AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_gh_marker.c)
  list(APPEND TL_FUZZ_CORE src/stores/github_marker.c)
  list(APPEND TL_FUZZ_TARGETS gh_marker)
endif()

# The message handler of `tasklock mcp` (cli/mcp_server.c, cli/mcp_tools.c) runs its tools for
# real: it links the whole embedded library (memory store), compiled once more like the core.
if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_mcp.c)
  list(APPEND TL_FUZZ_TARGETS mcp)
endif()

enable_testing() # also when TL_BUILD_TESTS is OFF: the fuzz tests need no cmocka

add_library(tl_fuzz_core STATIC ${TL_FUZZ_CORE})
target_include_directories(tl_fuzz_core PUBLIC include src)
target_compile_definitions(tl_fuzz_core PUBLIC _POSIX_C_SOURCE=200809L)
target_compile_options(tl_fuzz_core PRIVATE ${TL_WARNINGS} ${TL_FUZZ_CFLAGS}
                       -fsanitize=fuzzer-no-link,${TL_FUZZ_SANITIZERS})
target_link_libraries(tl_fuzz_core PUBLIC PkgConfig::JANSSON)

if(mcp IN_LIST TL_FUZZ_TARGETS)
  add_library(tl_fuzz_lite STATIC ${TL_CORE_SOURCES} cli/mcp_server.c cli/mcp_tools.c cli/format.c)
  target_include_directories(tl_fuzz_lite PUBLIC include src cli)
  target_compile_definitions(tl_fuzz_lite PUBLIC _POSIX_C_SOURCE=200809L)
  target_compile_options(tl_fuzz_lite PRIVATE ${TL_WARNINGS} ${TL_FUZZ_CFLAGS}
                         -fsanitize=fuzzer-no-link,${TL_FUZZ_SANITIZERS})
  target_link_libraries(tl_fuzz_lite PUBLIC PkgConfig::SQLITE3 PkgConfig::JANSSON
                        Threads::Threads m)
endif()

add_custom_target(tl_fuzz) # builds every fuzz target: cmake --build B --target tl_fuzz
foreach(t ${TL_FUZZ_TARGETS})
  add_executable(fuzz_${t} fuzz/fuzz_${t}.c)
  add_dependencies(tl_fuzz fuzz_${t})
  target_compile_options(fuzz_${t} PRIVATE ${TL_WARNINGS} ${TL_FUZZ_CFLAGS}
                         -fsanitize=fuzzer,${TL_FUZZ_SANITIZERS})
  target_link_options(fuzz_${t} PRIVATE -fsanitize=fuzzer,${TL_FUZZ_SANITIZERS})
  if(t STREQUAL mcp)
    target_link_libraries(fuzz_${t} PRIVATE tl_fuzz_lite)
  else()
    target_link_libraries(fuzz_${t} PRIVATE tl_fuzz_core)
  endif()

  # libFuzzer writes what it finds into the first corpus folder: ours, never the seeds.
  set(work ${CMAKE_CURRENT_BINARY_DIR}/fuzz/corpus/${t})
  set(artifacts ${CMAKE_CURRENT_BINARY_DIR}/fuzz/artifacts/${t})
  file(MAKE_DIRECTORY ${work} ${artifacts})
  add_test(NAME fuzz_${t}
           COMMAND fuzz_${t} -max_total_time=${TL_FUZZ_SECONDS} -timeout=5 -rss_limit_mb=2048
                   -print_final_stats=1 -artifact_prefix=${artifacts}/
                   ${work} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${t})
  math(EXPR limit "${TL_FUZZ_SECONDS} + 120")
  set_tests_properties(fuzz_${t} PROPERTIES LABELS fuzz TIMEOUT ${limit})

  add_test(NAME fuzz_${t}_regressions
           COMMAND ${CMAKE_COMMAND} -DFUZZER=$<TARGET_FILE:fuzz_${t}>
                   -DDIR=${CMAKE_CURRENT_SOURCE_DIR}/fuzz/regressions/${t}
                   -P ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/regressions.cmake)
  set_tests_properties(fuzz_${t}_regressions PROPERTIES LABELS fuzz TIMEOUT 300)
endforeach()

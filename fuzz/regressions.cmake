# Runs a fuzz target once on every input kept in a regressions folder (see
# fuzz/regressions/README.md). Hidden files and README files are not inputs.
#   cmake -DFUZZER=<fuzz target> -DDIR=<fuzz/regressions/NAME> -P fuzz/regressions.cmake
if(NOT FUZZER OR NOT DIR)
  message(FATAL_ERROR "usage: cmake -DFUZZER=<target> -DDIR=<folder> -P regressions.cmake")
endif()

file(GLOB inputs LIST_DIRECTORIES false "${DIR}/*")
list(FILTER inputs EXCLUDE REGEX "/(README[^/]*|\\.[^/]*)$")
list(LENGTH inputs n)
if(n EQUAL 0)
  message(STATUS "no regression inputs in ${DIR}")
  return()
endif()

# Given files rather than folders, libFuzzer runs each once and does not fuzz.
execute_process(COMMAND ${FUZZER} ${inputs} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${FUZZER} failed (${rc}) on an input in ${DIR}")
endif()
message(STATUS "${n} regression inputs passed")

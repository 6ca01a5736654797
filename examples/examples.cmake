# Examples: small programs that use only the public header. Each is linked with the shared
# library, so building them proves that the exported symbols suffice; with the tests on, ctest
# runs each one (label `examples`) and expects exit status 0.
set(TL_EXAMPLES basic worker_pool strategies lost_lock fencing task_queue readers_writers)

foreach(name ${TL_EXAMPLES})
  add_executable(example_${name} ${CMAKE_CURRENT_SOURCE_DIR}/examples/${name}.c)
  target_compile_options(example_${name} PRIVATE ${TL_WARNINGS})
  target_link_libraries(example_${name} PRIVATE tl Threads::Threads)
endforeach()

if(TL_BUILD_TESTS)
  enable_testing()
  foreach(name ${TL_EXAMPLES})
    add_test(NAME example_${name} COMMAND example_${name})
    set_tests_properties(example_${name} PROPERTIES LABELS examples TIMEOUT 60)
  endforeach()
endif()

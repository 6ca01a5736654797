# tl-proxy: a TCP proxy on 127.0.0.1 that can freeze (a network partition), thaw and drop its
# connections; tl-tick: a stand-in for a locked command that writes CLOCK_MONOTONIC ticks to a
# file; the tl_proxy_client helper with which tl-torture drives the proxy (the cmocka tests get
# the same helper from tl_testsupport, tests/support/tl_proxy.c); and the proxy's own test.
# Included from tests/tests.cmake. Both tools are built into the build directory's root, beside
# tl-torture, where the helper looks for tl-proxy.
set(TL_PROXY_DIR ${CMAKE_CURRENT_LIST_DIR})

add_executable(tl_proxy ${TL_PROXY_DIR}/proxy.c)
add_executable(tl_tick ${TL_PROXY_DIR}/tick.c)
foreach(t tl_proxy tl_tick)
  string(REPLACE "_" "-" out ${t})
  set_target_properties(${t} PROPERTIES OUTPUT_NAME ${out}
                        RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
  target_compile_definitions(${t} PRIVATE _POSIX_C_SOURCE=200809L)
  target_compile_options(${t} PRIVATE ${TL_WARNINGS})
endforeach()

add_library(tl_proxy_client STATIC ${CMAKE_CURRENT_SOURCE_DIR}/tests/support/tl_proxy.c)
target_include_directories(tl_proxy_client PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/tests/support)
target_compile_definitions(tl_proxy_client PRIVATE _POSIX_C_SOURCE=200809L)
target_compile_options(tl_proxy_client PRIVATE ${TL_WARNINGS})
target_link_libraries(tl_proxy_client PUBLIC tl_spawn)

add_executable(test_proxy ${TL_PROXY_DIR}/test_proxy.c)
target_compile_options(test_proxy PRIVATE ${TL_WARNINGS})
target_link_libraries(test_proxy PRIVATE tl_proxy_client PkgConfig::CMOCKA Threads::Threads)
target_compile_definitions(test_proxy PRIVATE _POSIX_C_SOURCE=200809L)
add_dependencies(test_proxy tl_proxy)
add_test(NAME proxy COMMAND test_proxy)
set_tests_properties(proxy PROPERTIES LABELS integration TIMEOUT 120
                     ENVIRONMENT "TL_PROXY_BIN=$<TARGET_FILE:tl_proxy>")

# Tests: one cmocka executable per file, registered with ctest and labelled by folder.
# tests/support/*.c (the conformance suite, fake clock, helpers) is linked into all of them.
pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)

# Spawning a test helper program on pipes: one library, used by tl_testsupport and by the
# smaller clients of the GitHub test server and the proxy (tests/github-server, tests/proxy).
add_library(tl_spawn STATIC ${CMAKE_CURRENT_SOURCE_DIR}/tests/support/tl_spawn.c)
target_include_directories(tl_spawn PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/tests/support)
target_compile_definitions(tl_spawn PRIVATE _POSIX_C_SOURCE=200809L)
target_compile_options(tl_spawn PRIVATE ${TL_WARNINGS})

file(GLOB TL_TEST_SUPPORT CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/tests/support/*.c)
list(FILTER TL_TEST_SUPPORT EXCLUDE REGEX "/tl_spawn\\.c$")
add_library(tl_testsupport STATIC ${TL_TEST_SUPPORT})
target_include_directories(tl_testsupport PUBLIC tests/support src)
target_compile_definitions(tl_testsupport PUBLIC _POSIX_C_SOURCE=200809L ${TL_DEFS})
target_compile_options(tl_testsupport PRIVATE ${TL_WARNINGS})
target_link_libraries(tl_testsupport PUBLIC tl_static tl_spawn PkgConfig::CMOCKA)

set(TL_TEST_TIMEOUT 300 CACHE STRING "Per-test timeout in seconds")
foreach(label unit integration)
  file(GLOB tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/tests/${label}/test_*.c)
  # test_<store>*.c belongs to an optional store: built only when that store is.
  foreach(store github redis postgres etcd)
    string(TOUPPER ${store} STORE)
    if(NOT TL_WITH_${STORE})
      list(FILTER tests EXCLUDE REGEX "/test_${store}[^/]*\\.c$")
    endif()
  endforeach()
  foreach(src ${tests})
    get_filename_component(name ${src} NAME_WE)
    string(REGEX REPLACE "^test_" "" name ${name})
    add_executable(test_${name} ${src})
    target_compile_options(test_${name} PRIVATE ${TL_WARNINGS})
    target_link_libraries(test_${name} PRIVATE tl_testsupport)
    add_test(NAME ${name} COMMAND test_${name})
    set_tests_properties(${name} PROPERTIES LABELS ${label} TIMEOUT ${TL_TEST_TIMEOUT}
                         SKIP_RETURN_CODE 77
                         ENVIRONMENT "TL_TEST_BINARY_DIR=${CMAKE_BINARY_DIR}")
  endforeach()
endforeach()

# Out-of-memory tests fail the Nth allocation of the library's own objects.
if(TARGET test_oom)
  target_link_options(test_oom PRIVATE -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc)
endif()

include(tests/github-server/server.cmake OPTIONAL)
include(tests/proxy/proxy.cmake OPTIONAL)
include(tests/torture/torture.cmake OPTIONAL)
include(tests/extra.cmake OPTIONAL)
include(tests/mcp/mcp.cmake OPTIONAL)
include(tests/serve/serve.cmake OPTIONAL)

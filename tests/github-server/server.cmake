# tl-github-server: the project's local stand-in for the GitHub REST API (tests only; see
# tests/github-server/PROTOCOL.md), the tl_ghs_client helper with which tests spawn and drive
# it, and the server's own test. Included from tests/tests.cmake.
pkg_check_modules(MHD REQUIRED IMPORTED_TARGET libmicrohttpd)
pkg_check_modules(TL_GHS_CURL REQUIRED IMPORTED_TARGET libcurl)

set(TL_GHS_DIR ${CMAKE_CURRENT_LIST_DIR})

add_executable(tl_github_server
  ${TL_GHS_DIR}/server.c ${TL_GHS_DIR}/state.c ${TL_GHS_DIR}/http.c ${TL_GHS_DIR}/api.c
  ${TL_GHS_DIR}/admin.c ${TL_GHS_DIR}/faults.c)
set_target_properties(tl_github_server PROPERTIES OUTPUT_NAME tl-github-server
                      RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
target_compile_definitions(tl_github_server PRIVATE _POSIX_C_SOURCE=200809L)
target_compile_options(tl_github_server PRIVATE ${TL_WARNINGS})
target_link_libraries(tl_github_server PRIVATE PkgConfig::MHD PkgConfig::JANSSON Threads::Threads)
# Installed too, as tasklock-github-server, for trying the GitHub store by hand without GitHub
# (docs/github.md, "Trying it offline"). It serves 127.0.0.1 only.
option(TL_INSTALL_GITHUB_SERVER "Install the GitHub test server as tasklock-github-server" ON)
if(TL_INSTALL_GITHUB_SERVER)
  install(PROGRAMS $<TARGET_FILE:tl_github_server> DESTINATION ${CMAKE_INSTALL_BINDIR}
          RENAME tasklock-github-server)
endif()

# -iquote, not -I: "spawn.h" must not shadow the system <spawn.h> in the code that uses it.
add_library(tl_ghs_client STATIC ${TL_GHS_DIR}/spawn.c)
target_compile_definitions(tl_ghs_client PRIVATE _POSIX_C_SOURCE=200809L)
target_compile_options(tl_ghs_client PRIVATE ${TL_WARNINGS} INTERFACE -iquote ${TL_GHS_DIR})
target_link_libraries(tl_ghs_client PUBLIC tl_spawn PkgConfig::TL_GHS_CURL PkgConfig::JANSSON
                      Threads::Threads)

add_executable(test_github_server ${TL_GHS_DIR}/test_server.c)
target_compile_definitions(test_github_server PRIVATE _POSIX_C_SOURCE=200809L)
target_compile_options(test_github_server PRIVATE ${TL_WARNINGS})
target_link_libraries(test_github_server PRIVATE tl_ghs_client PkgConfig::CMOCKA)
add_dependencies(test_github_server tl_github_server)
add_test(NAME github_server COMMAND test_github_server)
set_tests_properties(github_server PROPERTIES LABELS integration TIMEOUT 120
                     ENVIRONMENT "TL_GITHUB_SERVER_BIN=$<TARGET_FILE:tl_github_server>")

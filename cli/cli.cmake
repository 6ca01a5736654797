# The `tasklock` command (cli/), linked statically against the library for a fast start.
#
# Two binaries come from the same sources:
# - `tasklock` (in the build root; installed in bindir) has the embedded stores only (SQLite,
#   memory), so it starts without loading the network stores' client libraries;
# - `tasklock-net` (beside it in the build root; installed in libexecdir/tasklock) has every
#   store of this build. `tasklock` execs it, with the same arguments, when a store URL names a
#   store it lacks (cli/common.c, tl_cli_handoff).
# With no network store built in, `tasklock` is the only one and has everything.
set(TL_CLI_SOURCES
  cli/main.c cli/common.c cli/format.c cli/cmd_acquire.c cli/cmd_release.c cli/cmd_renew.c
  cli/cmd_convert.c cli/cmd_run.c cli/child.c cli/cmd_claim.c cli/cmd_work.c
  cli/cmd_status.c cli/cmd_list.c cli/cmd_log.c cli/cmd_where.c cli/cmd_demo.c cli/cmd_help.c
  cli/cmd_mcp.c cli/mcp_server.c cli/mcp_tools.c cli/shapes.c cli/cmd_serve.c)
file(RELATIVE_PATH TL_NET_FROM_BIN "/${CMAKE_INSTALL_BINDIR}"
     "/${CMAKE_INSTALL_LIBEXECDIR}/tasklock/tasklock-net")

# `tasklock serve` (cli/serve_*.c, issue 16) links libmicrohttpd, so it is built into the binary
# with every store only: `tasklock serve` hands off to tasklock-net whatever the store, and
# `tasklock` itself never loads libmicrohttpd (and GnuTLS behind it). Its page (HTML, CSS,
# JavaScript) is embedded into a generated C file by cli/serve_embed.cmake.
pkg_check_modules(TL_MHD REQUIRED IMPORTED_TARGET libmicrohttpd)
set(TL_SERVE_PAGE ${CMAKE_CURRENT_SOURCE_DIR}/cli/serve_page.html
    ${CMAKE_CURRENT_SOURCE_DIR}/cli/serve_page.css ${CMAKE_CURRENT_SOURCE_DIR}/cli/serve_page.js)
add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/serve_page.c
                   COMMAND ${CMAKE_COMMAND} -DDIR=${CMAKE_CURRENT_SOURCE_DIR}/cli
                           -DOUT=${CMAKE_BINARY_DIR}/serve_page.c
                           -P ${CMAKE_CURRENT_SOURCE_DIR}/cli/serve_embed.cmake
                   DEPENDS ${TL_SERVE_PAGE} ${CMAKE_CURRENT_SOURCE_DIR}/cli/serve_embed.cmake
                   COMMENT "Embedding the page of tasklock serve")
set(TL_SERVE_SOURCES cli/serve_state.c cli/serve_http.c cli/serve_prom.c
    ${CMAKE_BINARY_DIR}/serve_page.c)

function(tl_cli_binary target output lib with_serve)
  if(with_serve)
    add_executable(${target} ${TL_CLI_SOURCES} ${TL_SERVE_SOURCES})
    target_compile_definitions(${target} PRIVATE TL_CLI_SERVE)
    target_link_libraries(${target} PRIVATE PkgConfig::TL_MHD)
  else()
    add_executable(${target} ${TL_CLI_SOURCES})
  endif()
  set_target_properties(${target} PROPERTIES OUTPUT_NAME ${output}
                        RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
  target_compile_definitions(${target} PRIVATE _POSIX_C_SOURCE=200809L
                             TL_NET_FROM_BIN="${TL_NET_FROM_BIN}")
  target_compile_options(${target} PRIVATE ${TL_WARNINGS})
  target_link_libraries(${target} PRIVATE ${lib} PkgConfig::JANSSON Threads::Threads m)
endfunction()

if(TL_WITH_GITHUB OR TL_WITH_REDIS OR TL_WITH_POSTGRES OR TL_WITH_ETCD)
  tl_cli_binary(tasklock_cli tasklock tl_lite_static OFF)
  tl_cli_binary(tasklock_net tasklock-net tl_static ON)
  add_dependencies(tasklock_cli tasklock_net) # building `tasklock` builds what it hands off to
  install(TARGETS tasklock_net RUNTIME DESTINATION ${CMAKE_INSTALL_LIBEXECDIR}/tasklock)
else()
  tl_cli_binary(tasklock_cli tasklock tl_static ON)
endif()

install(TARGETS tasklock_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES docs/tasklock.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)

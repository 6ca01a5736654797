# The `tasklock` command (cli/): linked against the static library for a fast start, built as
# `tasklock` in the root of the build directory (the Makefile's `make demo` runs it from there).
# It uses the public API only (include/tasklock.h), though tl_static also exposes src/.
add_executable(tasklock_cli
  cli/main.c cli/common.c cli/cmd_acquire.c cli/cmd_release.c cli/cmd_renew.c cli/cmd_run.c
  cli/cmd_status.c cli/cmd_list.c cli/cmd_log.c cli/cmd_demo.c cli/cmd_help.c)
set_target_properties(tasklock_cli PROPERTIES OUTPUT_NAME tasklock
                      RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
target_compile_definitions(tasklock_cli PRIVATE _POSIX_C_SOURCE=200809L)
target_compile_options(tasklock_cli PRIVATE ${TL_WARNINGS})
target_link_libraries(tasklock_cli PRIVATE tl_static PkgConfig::JANSSON)

install(TARGETS tasklock_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES docs/tasklock.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)

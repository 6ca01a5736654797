# Benchmark drivers: built with the project, run by `make bench` (never by ctest: performance is
# measured, not asserted). Each reports ratios against a baseline measured in the same run.
file(GLOB TL_BENCH_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/bench/bench_*.c)
foreach(src ${TL_BENCH_SOURCES})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_compile_definitions(${name} PRIVATE _POSIX_C_SOURCE=200809L)
  target_compile_options(${name} PRIVATE ${TL_WARNINGS})
  target_link_libraries(${name} PRIVATE tl_static)
endforeach()
include(bench/extra.cmake OPTIONAL)

# Benchmark drivers: built with the project, run by `make bench` (bench/run.sh; never by ctest:
# performance is measured, not asserted). Each reports ratios against a baseline measured in the
# same run. A driver that needs one store's own headers or client library (bench_redis,
# bench_postgres, bench_etcd) is built only when that store is in the build; the others check at
# run time which stores the library has and say "not measured" for the rest.
file(GLOB TL_BENCH_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/bench/bench_*.c)
foreach(src ${TL_BENCH_SOURCES})
  get_filename_component(name ${src} NAME_WE)
  set(needs "")
  if(name STREQUAL "bench_redis")
    set(needs src/stores/redis.c)
  elseif(name STREQUAL "bench_postgres")
    set(needs src/stores/postgres.c)
  elseif(name STREQUAL "bench_etcd")
    set(needs src/stores/etcd.c)
  endif()
  if(needs AND NOT needs IN_LIST TL_SOURCES)
    message(STATUS "bench: ${name} not built (this build has no ${needs})")
    continue()
  endif()
  add_executable(${name} ${src})
  target_compile_definitions(${name} PRIVATE _POSIX_C_SOURCE=200809L)
  target_compile_options(${name} PRIVATE ${TL_WARNINGS})
  target_link_libraries(${name} PRIVATE tl_static)
  # bench_claim's PostgreSQL floors need libpq's header: only when that store is built.
  if(name STREQUAL "bench_claim" AND "src/stores/postgres.c" IN_LIST TL_SOURCES)
    target_compile_definitions(${name} PRIVATE TL_BENCH_HAVE_PG)
  endif()
endforeach()
include(bench/extra.cmake OPTIONAL)

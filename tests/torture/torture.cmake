# The torture harness (tests/torture/, docs/reliability.md): the tl-torture driver, a self-test
# of its checker, and one ctest per short scenario, labelled `torture`. Included by
# tests/tests.cmake; `make torture` runs the long versions (tests/torture/run-long.sh).
add_executable(tl-torture
  tests/torture/torture.c tests/torture/worker.c tests/torture/checker.c
  tests/torture/shared.c tests/torture/github.c)
set_target_properties(tl-torture PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
target_compile_definitions(tl-torture PRIVATE _POSIX_C_SOURCE=200809L ${TL_DEFS})
target_compile_options(tl-torture PRIVATE ${TL_WARNINGS})
target_link_libraries(tl-torture PRIVATE tl_static PkgConfig::JANSSON Threads::Threads)
# partition: a tl-proxy between half the workers and the store (tests/proxy/proxy.cmake).
target_link_libraries(tl-torture PRIVATE tl_proxy_client)
add_dependencies(tl-torture tl_proxy)
# GitHub runs spawn a private tl-github-server with its own helper (tests/github-server).
set(TL_TORTURE_ENV "TL_PROXY_BIN=$<TARGET_FILE:tl_proxy>")
if(TARGET tl_ghs_client AND TARGET tl_github_server)
  target_compile_definitions(tl-torture PRIVATE TT_WITH_GHS)
  target_link_libraries(tl-torture PRIVATE tl_ghs_client)
  add_dependencies(tl-torture tl_github_server)
  list(APPEND TL_TORTURE_ENV "TL_GITHUB_SERVER_BIN=$<TARGET_FILE:tl_github_server>")
endif()

# The checker must catch what it claims to catch: synthetic logs with planted violations.
add_executable(test_torture_checker tests/torture/test_checker.c tests/torture/checker.c)
target_compile_options(test_torture_checker PRIVATE ${TL_WARNINGS})
target_link_libraries(test_torture_checker PRIVATE tl_testsupport)
add_test(NAME torture_checker COMMAND test_torture_checker)
set_tests_properties(torture_checker PROPERTIES LABELS "torture;unit" TIMEOUT 60)

# Sanitizer builds run the same scenarios with fewer cycles (the faults stay): TSan slows the
# workers about tenfold, ASan about threefold. TL_TORTURE_SCALE multiplies on top.
if(TL_SANITIZE MATCHES "thread")
  set(TL_TORTURE_BUILD_SCALE 0.25)
elseif(TL_SANITIZE)
  set(TL_TORTURE_BUILD_SCALE 0.5)
else()
  set(TL_TORTURE_BUILD_SCALE 1)
endif()

# tl_torture(NAME STORE SCENARIO [tl-torture options]): the short version of one scenario.
# run-scenario.sh provides the store (a temporary SQLite file, the servers with-servers started,
# or private servers when the scenario restarts them) and exits 77 when the store is not built.
function(tl_torture name store scenario)
  add_test(NAME torture_${name}
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/tests/torture/run-scenario.sh
                   $<TARGET_FILE:tl-torture> ${store} ${scenario} ${ARGN})
  set_tests_properties(torture_${name} PROPERTIES LABELS torture TIMEOUT 600
                       SKIP_RETURN_CODE 77
                       ENVIRONMENT "TL_TORTURE_BUILD_SCALE=${TL_TORTURE_BUILD_SCALE};${TL_TORTURE_ENV}")
endfunction()

# Machine-clock stores (restart and clock-skew do not apply: docs/reliability.md).
tl_torture(sqlite_clean    sqlite clean   --workers 8 --cycles 200 --keys 3)
tl_torture(memory_clean    memory clean   --workers 8 --cycles 400 --keys 3)
tl_torture(sqlite_sigkill  sqlite sigkill --workers 6 --cycles 150 --keys 3 --lock-timeout 1s
           --faults 4)
tl_torture(sqlite_sigstop  sqlite sigstop --workers 6 --cycles 150 --keys 2 --lock-timeout 1s
           --faults 3)
# The line (DESIGN.md section 7): waiters with random priorities and patience, RETRY and
# STEAL_STALE; waiters and holders SIGKILLed and SIGSTOPped (memory: threads, no signals). Skipped
# (77) on a store whose line this build does not have yet.
tl_torture(memory_line     memory line    --workers 6 --cycles 400 --keys 2 --lock-timeout 1s)
tl_torture(sqlite_line     sqlite line    --workers 6 --cycles 150 --keys 2 --lock-timeout 1s
           --faults 4)
# Server-clock stores: their servers come from with-servers, or are private (restart).
foreach(store redis postgres)
  tl_torture(${store}_clean      ${store} clean      --workers 8 --cycles 200 --keys 3)
  tl_torture(${store}_sigkill    ${store} sigkill    --workers 6 --cycles 150 --keys 3
             --lock-timeout 1s --faults 4)
  tl_torture(${store}_sigstop    ${store} sigstop    --workers 6 --cycles 150 --keys 2
             --lock-timeout 1s --faults 3)
  tl_torture(${store}_restart    ${store} restart    --workers 6 --cycles 150 --keys 3
             --lock-timeout 2s --faults 3 --fault-interval 1s)
  tl_torture(${store}_clock_skew ${store} clock-skew --workers 6 --cycles 60 --keys 3)
  # Half the workers behind a tl-proxy that freezes for 2.5 lock timeouts, twice; a lock
  # timeout of 4 s (margin 200 ms) that scheduling delays cannot eat, even under TSan.
  tl_torture(${store}_partition  ${store} partition  --workers 6 --cycles 100 --keys 2
             --lock-timeout 4s --faults 2 --fault-interval 1s)
  tl_torture(${store}_line       ${store} line       --workers 6 --cycles 150 --keys 2
             --lock-timeout 1s --faults 4)
endforeach()
# etcd: a private three-member cluster per run (tests/harness/etcd-cluster.sh), every worker
# given all three endpoints. leader-kill: per fault, the leader SIGKILLed and restarted on its
# data, then a follower SIGSTOPped for --stop; every worker must acquire again within 15 s.
tl_torture(etcd_clean       etcd clean       --workers 8 --cycles 100 --keys 3)
tl_torture(etcd_sigkill     etcd sigkill     --workers 6 --cycles 100 --keys 3 --lock-timeout 1s
           --faults 4)
tl_torture(etcd_sigstop     etcd sigstop     --workers 6 --cycles 100 --keys 2 --lock-timeout 1s
           --faults 3)
tl_torture(etcd_line        etcd line        --workers 6 --cycles 60 --keys 2 --lock-timeout 1s
           --faults 4)
tl_torture(etcd_leader_kill etcd leader-kill --workers 6 --cycles 150 --keys 3 --lock-timeout 3s
           --faults 2 --stop 2s)
# GitHub: a private tl-github-server per run; fewer, slower cycles (every acquire reads the
# issue's whole comment list, and each release leaves a completion comment in it).
tl_torture(github_clean      github clean      --workers 4 --cycles 15 --keys 4)
tl_torture(github_sigkill    github sigkill    --workers 4 --cycles 15 --keys 3 --lock-timeout 3s
           --faults 2)
tl_torture(github_sigstop    github sigstop    --workers 4 --cycles 15 --keys 2 --lock-timeout 3s
           --faults 2)
tl_torture(github_faults     github github-faults --workers 4 --cycles 15 --keys 4 --faults 8
           --fault-interval 1s)
tl_torture(github_clock_skew github clock-skew --workers 4 --cycles 15 --keys 3 --hold 500ms)
tl_torture(github_partition  github partition  --workers 4 --cycles 15 --keys 2 --lock-timeout 4s
           --faults 2 --fault-interval 1s)
# Sessions (issue 18): with no line, every claim hangs on its manager's session comment, and a
# SIGKILLed or SIGSTOPped holder's session goes stale with all its locks at once.
tl_torture(github_sessions_sigkill github sigkill --no-line --sessions --workers 4 --cycles 15 --keys 3
           --lock-timeout 3s --faults 2)
tl_torture(github_sessions_sigstop github sigstop --no-line --sessions --workers 4 --cycles 15 --keys 2
           --lock-timeout 3s --faults 2)
# FIFO only (priority 0); a waiter's place is its claim comment, alive for the lock timeout.
tl_torture(github_line       github line       --workers 4 --cycles 15 --keys 2 --lock-timeout 4s
           --faults 4 --hold 200ms)

# Shared holders, semaphores, upgrades and deadlocks (docs/reliability.md, "Readers, writers,
# semaphores and deadlocks"): --modes makes each section, at random, a reader, a writer, a
# reader that upgrades, or a slot of a semaphore of 2 (every third key), under SIGKILL and
# SIGSTOP; deadlock makes cycles of 2 and 3 waits on purpose (7 workers: a group of three and two
# pairs) and runs an ordered workload beside them. A 1 s lock timeout keeps a wait interval (a
# third of the waiter timeout) at 333 ms. Each is skipped (77) on a store that does not have
# the feature in this build (struct tl_store's modes, deadlocks; ops->convert for upgrades).
tl_torture(memory_modes    memory clean    --modes --workers 8 --cycles 200 --keys 3
           --lock-timeout 1s)
tl_torture(memory_deadlock memory deadlock --workers 7 --cycles 8 --keys 3 --lock-timeout 1s)
foreach(store sqlite redis postgres etcd github)
  if(store STREQUAL "github")
    # Every GitHub poll reads an issue's comment list: fewer cycles, a longer lock timeout.
    set(tt_modes --workers 4 --cycles 15 --keys 3 --lock-timeout 3s --faults 2)
    set(tt_deadlock --workers 5 --cycles 3 --keys 2 --lock-timeout 3s)
  else()
    set(tt_modes --workers 6 --cycles 100 --keys 3 --lock-timeout 1s --faults 3)
    set(tt_deadlock --workers 7 --cycles 6 --keys 3 --lock-timeout 1s)
  endif()
  tl_torture(${store}_modes_sigkill ${store} sigkill  --modes ${tt_modes})
  tl_torture(${store}_modes_sigstop ${store} sigstop  --modes ${tt_modes})
  tl_torture(${store}_deadlock      ${store} deadlock ${tt_deadlock})
endforeach()

# The longest scenarios (a three-member etcd cluster killed and restarted; proxies frozen for
# lock timeouts; servers restarted) also carry the label `slow`: the plain build runs them, the
# sanitizer builds leave them out (Makefile, test-asan and test-tsan) to keep CI within its time.
# Every store still runs its clean, sigkill, sigstop and line scenarios under both sanitizers.
foreach(t torture_etcd_leader_kill torture_etcd_line torture_redis_partition
          torture_postgres_partition torture_postgres_restart torture_redis_restart
          torture_github_partition torture_github_modes_sigstop torture_etcd_modes_sigstop)
  if(TEST ${t})
    set_tests_properties(${t} PROPERTIES LABELS "torture;slow")
  endif()
endforeach()

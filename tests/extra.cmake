# Extra wiring of test executables (included last by tests/tests.cmake).
#
# The GitHub store's integration tests spawn their own private tl-github-server (so that faults
# and request counters of one executable never disturb another): they link its client helper
# and need the server built first.
foreach(t github github_protocol github_limits github_cli github_line github_next github_session)
  if(TARGET test_${t} AND TARGET tl_ghs_client)
    target_link_libraries(test_${t} PRIVATE tl_ghs_client)
    add_dependencies(test_${t} tl_github_server)
    set_tests_properties(${t} PROPERTIES ENVIRONMENT
                         "TL_GITHUB_SERVER_BIN=$<TARGET_FILE:tl_github_server>")
  endif()
endforeach()

# The CLI test drives the built binary.
if(TARGET test_github_cli AND TARGET tasklock_cli)
  add_dependencies(test_github_cli tasklock_cli)
endif()

# The session sweep test, likewise on a server of its own, also runs `tasklock run` as a holder
# in another process (TL_TEST_BINARY_DIR: where the binary is).
if(TARGET test_github_session_sweep AND TARGET tl_ghs_client AND TARGET tasklock_cli)
  target_link_libraries(test_github_session_sweep PRIVATE tl_ghs_client)
  add_dependencies(test_github_session_sweep tl_github_server tasklock_cli)
  set_tests_properties(github_session_sweep PROPERTIES ENVIRONMENT
                       "TL_GITHUB_SERVER_BIN=$<TARGET_FILE:tl_github_server>;TL_TEST_BINARY_DIR=${CMAKE_BINARY_DIR}")
endif()

# The partition test (tests/integration/test_partition.c) puts a tl-proxy between a holder and
# its store, runs `tasklock run` with tl-tick as its command, and on GitHub spawns its own
# tl-github-server (TL_TEST_WITH_GHS: the helper is linked). Redis and PostgreSQL come from
# with-servers; a store that is missing skips its cases.
if(TARGET test_partition)
  add_dependencies(test_partition tl_proxy tl_tick)
  if(TARGET tasklock_cli)
    add_dependencies(test_partition tasklock_cli)
  endif()
  set(env "TL_TEST_BINARY_DIR=${CMAKE_BINARY_DIR}" "TL_PROXY_BIN=$<TARGET_FILE:tl_proxy>")
  if(TARGET tl_ghs_client)
    target_link_libraries(test_partition PRIVATE tl_ghs_client)
    target_compile_definitions(test_partition PRIVATE TL_TEST_WITH_GHS)
    add_dependencies(test_partition tl_github_server)
    list(APPEND env "TL_GITHUB_SERVER_BIN=$<TARGET_FILE:tl_github_server>")
  endif()
  set_tests_properties(partition PROPERTIES ENVIRONMENT "${env}")
endif()

# The README's install example, run as written: install into a temporary prefix, build the
# README's C program with its pkg-config line, run it (tests/install/readme_install.sh).
add_test(NAME readme_install
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/tests/install/readme_install.sh ${CMAKE_BINARY_DIR}
                 ${CMAKE_CURRENT_SOURCE_DIR})
set_tests_properties(readme_install PROPERTIES LABELS integration TIMEOUT 300
                     SKIP_RETURN_CODE 77 ENVIRONMENT "TL_SANITIZE=${TL_SANITIZE}")

# Every environment variable the code reads is in the man page and docs/cli.md.
add_test(NAME doc_environment
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/tests/install/doc_environment.sh
                 ${CMAKE_CURRENT_SOURCE_DIR})
set_tests_properties(doc_environment PROPERTIES LABELS unit TIMEOUT 60)

# The etcd failover test starts its own three-member cluster with the harness's script.
if(TARGET test_etcd_failover)
  set_tests_properties(etcd_failover PROPERTIES ENVIRONMENT
                       "TL_ETCD_CLUSTER_SH=${CMAKE_CURRENT_SOURCE_DIR}/tests/harness/etcd-cluster.sh")
endif()

# `tasklock serve` (issue 16): the HTTP test drives the built binary (tasklock hands serve to
# tasklock-net), and puts a tl-proxy between serve and Redis to take the store away.
if(TARGET test_serve AND TARGET tasklock_cli)
  add_dependencies(test_serve tasklock_cli tl_proxy)
endif()

# The three-member etcd cluster whose leader is killed: `slow`, like the longest torture
# scenarios (tests/torture/torture.cmake), so the sanitizer builds leave it out.
if(TEST etcd_failover)
  set_tests_properties(etcd_failover PROPERTIES LABELS "integration;slow")
endif()

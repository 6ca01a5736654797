# `tasklock mcp` (issue 15): the protocol test in C is tests/integration/test_mcp.c (registered
# with the other integration tests); this adds the test with the official MCP TypeScript SDK
# client, which needs node and npm (run_sdk_tests.sh installs the SDK into the build tree).
if(TARGET tasklock_cli)
  add_test(NAME mcp_sdk
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/tests/mcp/run_sdk_tests.sh ${CMAKE_BINARY_DIR}
                   ${CMAKE_CURRENT_SOURCE_DIR})
  set_tests_properties(mcp_sdk PROPERTIES LABELS integration TIMEOUT 600 SKIP_RETURN_CODE 77)
endif()

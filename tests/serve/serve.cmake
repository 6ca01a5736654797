# `tasklock serve` (issue 16): the HTTP test in C is tests/integration/test_serve.c (registered
# with the other integration tests); these add the node tests, labelled "browser" as well so
# that the sanitizer builds may leave them out (-LE browser): the page in headless chromium
# driven by puppeteer-core (installed into the build tree), and a real Prometheus scraping serve.
if(TARGET tasklock_cli)
  foreach(t browser prometheus)
    add_test(NAME serve_${t}
             COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/tests/serve/run_node_test.sh ${CMAKE_BINARY_DIR}
                     ${CMAKE_CURRENT_SOURCE_DIR} ${t})
    set_tests_properties(serve_${t} PROPERTIES LABELS "integration;browser" TIMEOUT 300
                         SKIP_RETURN_CODE 77)
  endforeach()
endif()

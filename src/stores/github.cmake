# The GitHub Issues store (github://OWNER/REPO): REST over libcurl. Included by the top
# CMakeLists.txt when TL_WITH_GITHUB is ON.
pkg_check_modules(CURL REQUIRED IMPORTED_TARGET libcurl)
list(APPEND TL_SOURCES src/http.c src/stores/github.c src/stores/github_config.c
     src/stores/github_rest.c src/stores/github_release.c src/stores/github_line.c
     src/stores/github_history.c src/stores/github_session.c src/stores/github_marker.c src/stores/github_next.c
     src/stores/github_modes.c src/stores/github_convert.c)
list(APPEND TL_LIBS PkgConfig::CURL)
list(APPEND TL_DEFS TL_WITH_GITHUB)
list(APPEND TL_PC_PKGS CURL)

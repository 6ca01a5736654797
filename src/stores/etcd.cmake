# The etcd store (etcd://HOST:PORT[,HOST:PORT...]): etcd's v3 JSON gateway over libcurl.
# Included by the top CMakeLists.txt when TL_WITH_ETCD is ON.
pkg_check_modules(CURL REQUIRED IMPORTED_TARGET libcurl)
list(APPEND TL_SOURCES src/stores/etcd.c src/stores/etcd_client.c src/stores/etcd_read.c
     src/stores/etcd_wire.c src/stores/etcd_next.c
     src/stores/etcd_modes.c src/stores/etcd_convert.c)
list(APPEND TL_LIBS PkgConfig::CURL)
list(APPEND TL_DEFS TL_WITH_ETCD)
list(APPEND TL_PC_PKGS CURL)

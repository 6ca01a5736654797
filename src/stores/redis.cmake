# The Redis store (hiredis). Included by the top CMakeLists.txt when TL_WITH_REDIS is ON.
# Debian 12 ships hiredis 0.14.1: the store uses only the pre-1.0 blocking API.
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)
list(APPEND TL_SOURCES src/stores/redis.c src/stores/redis_holders.c src/stores/redis_line.c src/stores/redis_next.c src/stores/redis_convert.c)
list(APPEND TL_LIBS PkgConfig::HIREDIS)
list(APPEND TL_DEFS TL_WITH_REDIS)
list(APPEND TL_PC_PKGS HIREDIS)

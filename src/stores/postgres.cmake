# src/stores/postgres.cmake -- the PostgreSQL store (libpq). Included by the top CMakeLists.txt
# when TL_WITH_POSTGRES is ON.
pkg_check_modules(LIBPQ REQUIRED IMPORTED_TARGET libpq)
list(APPEND TL_SOURCES src/stores/postgres.c src/stores/postgres_next.c
     src/stores/postgres_modes.c src/stores/postgres_modes_sql.c src/stores/postgres_convert.c
     src/stores/postgres_convert_sql.c)
list(APPEND TL_LIBS PkgConfig::LIBPQ)
list(APPEND TL_DEFS TL_WITH_POSTGRES)
list(APPEND TL_PC_PKGS LIBPQ)

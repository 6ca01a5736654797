#!/bin/sh
# readme_install.sh BUILD_DIR SOURCE_DIR -- the README's "In C" example, run as the README says:
# install into a temporary prefix, build the README's program with the README's pkg-config
# line, and run it: with LD_LIBRARY_PATH, with an rpath, and linked statically
# (tasklock-static). Also checks that `pkg-config --cflags tasklock` needs no store's .pc file
# and adds no include directory but the prefix's, and that the tools were installed.
# Exits 77 (skipped) without cc or pkg-config.
set -eu
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
command -v cc >/dev/null 2>&1 || { echo "readme_install: no cc: skipped"; exit 77; }
command -v pkg-config >/dev/null 2>&1 || { echo "readme_install: no pkg-config: skipped"; exit 77; }

fail() {
  echo "readme_install: $*" >&2
  exit 1
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tasklock-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log" >&2; fail "cmake --install failed"; }

pc=$(find "$prefix" -name tasklock.pc | head -n 1)
[ -n "$pc" ] || fail "no tasklock.pc under $prefix"
PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_PATH
libdir=$(pkg-config --variable=libdir tasklock)

# The README's program and its build line, as written there.
awk '/^## In C/ { inc = 1 } inc && /^```c$/ { on = 1; next } on && /^```$/ { exit } on' \
  "$src/README.md" >"$tmp/app.c"
readme_line() { # PATTERN: the first `...` code span of README.md matching it
  grep -o "\`$1\`" "$src/README.md" | head -n 1 | tr -d '\`'
}
line=$(readme_line 'cc app\.c \$(pkg-config --cflags --libs tasklock)')
rpath_line=$(readme_line 'cc app\.c \$(pkg-config --cflags --libs tasklock) -Wl,-rpath,[^`]*')
static_line=$(readme_line 'cc app\.c \$(pkg-config --cflags --libs tasklock-static)')
[ -s "$tmp/app.c" ] || fail "README.md: no C example under '## In C'"
[ -n "$line" ] || fail "README.md: no 'cc app.c \$(pkg-config --cflags --libs tasklock)' line"
[ -n "$rpath_line" ] || fail "README.md: no rpath build line"
[ -n "$static_line" ] || fail "README.md: no static build line"
grep -q 'LD_LIBRARY_PATH=DIR/lib' "$src/README.md" || fail "README.md: no LD_LIBRARY_PATH way"
# A library built with sanitizers needs them in the program too.
extra=
if [ -n "${TL_SANITIZE:-}" ]; then
  extra="-fsanitize=$TL_SANITIZE"
fi

cd "$tmp"
TASKLOCK_STORE="sqlite:$tmp/locks.db" # not the user's default file
export TASKLOCK_STORE
check_run() { # NAME: runs ./NAME (with what the environment says) and checks its output
  "./$1" >"$1.out" 2>"$1.err" || { cat "$1.err" >&2; fail "$1 failed"; }
  grep -q '^building with fencing token [0-9][0-9]*$' "$1.out" || fail "$1: $(cat "$1.out")"
}

# 1. As written; the loader finds the library through LD_LIBRARY_PATH.
sh -c "$line $extra -o app-ld" || fail "the README's build line failed"
LD_LIBRARY_PATH=$libdir check_run app-ld
# 2. With an rpath, as the README writes it: no environment needed at run time.
sh -c "$rpath_line $extra -o app-rpath" || fail "the rpath build failed"
(unset LD_LIBRARY_PATH; check_run app-rpath)
# 3. Statically, as the README writes it: no libtasklock.so needed at all.
sh -c "$static_line $extra -o app-static" || fail "the static build failed"
if command -v readelf >/dev/null 2>&1 && readelf -d app-static | grep -q 'libtasklock'; then
  fail "app-static still needs libtasklock.so"
fi
(unset LD_LIBRARY_PATH; check_run app-static)

# 4. A shared-library user needs no store's -dev package: with only our .pc file visible,
# --cflags --libs works and names nothing but the prefix.
flags=$(PKG_CONFIG_LIBDIR=$PKG_CONFIG_PATH pkg-config --cflags --libs tasklock) ||
  fail "pkg-config --cflags --libs tasklock needs other .pc files"
want_inc=$(cd "$prefix/include" && pwd -P)
for f in $flags; do
  case $f in
  -I*) [ "$(cd "${f#-I}" && pwd -P)" = "$want_inc" ] || fail "--cflags adds $f" ;;
  -L*) ;;
  -ltasklock) ;;
  *) fail "unexpected flag $f in: $flags" ;;
  esac
done
pkg-config --static --libs tasklock | grep -q -- '-lsqlite3' || fail "--static lacks -lsqlite3"

# 5. The tools.
"$prefix/bin/tasklock" --version | grep -q '^tasklock ' || fail "tasklock --version"
[ -f "$prefix/share/man/man1/tasklock.1" ] || fail "no man page"
if [ -x "$build/tl-github-server" ]; then
  [ -x "$prefix/bin/tasklock-github-server" ] || fail "no tasklock-github-server"
  "$prefix/bin/tasklock-github-server" --help >/dev/null || fail "tasklock-github-server --help"
fi
echo "readme_install: ok ($prefix)"

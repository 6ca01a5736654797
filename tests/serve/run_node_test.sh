#!/bin/sh
# run_node_test.sh BUILD_DIR SOURCE_DIR TEST -- the node tests of `tasklock serve`:
#   browser     browser_test.mjs: the page in Debian's headless chromium, driven by
#               puppeteer-core (installed from the npm registry into BUILD_DIR/serve-node once,
#               pinned; again only when the pin changes); screenshots in BUILD_DIR/serve-node
#   prometheus  prometheus_test.mjs: Debian's prometheus scraping serve, and promtool
# Without node (or npm, chromium, prometheus) the test is skipped (exit 77) -- except in CI (CI
# set), where scripts/install-deps must have installed them.
set -eu
PUPPETEER_VERSION=24.43.1

build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
test=$3
need() {
  for tool in "$@"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      if [ -n "${CI:-}" ]; then
        echo "run_node_test: $tool is missing (scripts/install-deps installs it)" >&2
        exit 1
      fi
      echo "run_node_test: $tool is not installed: skipping" >&2
      exit 77
    fi
  done
}
case $test in
  browser) need node npm chromium ;;
  prometheus) need node prometheus promtool ;;
  *) echo "run_node_test: unknown test $test" >&2; exit 2 ;;
esac
[ -x "$build/tasklock" ] || { echo "run_node_test: $build/tasklock is not built" >&2; exit 1; }

dir=$build/serve-node
mkdir -p "$dir"
if [ "$test" = browser ]; then
  installed() {
    node -e 'const p=require(process.argv[1]); process.exit(p.version===process.argv[2]?0:1)' \
      "$dir/node_modules/puppeteer-core/package.json" "$PUPPETEER_VERSION" 2>/dev/null
  }
  if ! installed; then
    echo "run_node_test: installing puppeteer-core@$PUPPETEER_VERSION into $dir" >&2
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error --save-exact \
      "puppeteer-core@$PUPPETEER_VERSION" >&2
    installed || { echo "run_node_test: puppeteer-core did not install" >&2; exit 1; }
  fi
fi
cp "$src/tests/serve/common.mjs" "$src/tests/serve/${test}_test.mjs" "$dir/"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tasklock-serve-$test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
TL_SERVE_BIN=$build/tasklock TL_SERVE_TMP=$tmp TL_SERVE_OUT=$dir \
  node --test-reporter=spec "$dir/${test}_test.mjs"

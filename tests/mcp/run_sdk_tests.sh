#!/bin/sh
# run_sdk_tests.sh BUILD_DIR SOURCE_DIR -- the tests of `tasklock mcp` with the official MCP
# TypeScript SDK client (sdk_test.mjs), run by Debian's nodejs. The SDK is installed from the npm
# registry into BUILD_DIR/mcp-node once (pinned; again only when the pin changes), and the test
# files are copied beside it, where node finds the SDK.
#
# Without node or npm the test is skipped (exit 77) -- except in CI (CI set), where
# scripts/install-deps must have installed them.
set -eu
SDK_VERSION=1.32.2

build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if [ -n "${CI:-}" ]; then
    echo "run_sdk_tests: node or npm is missing (scripts/install-deps installs nodejs and npm)" >&2
    exit 1
  fi
  echo "run_sdk_tests: node or npm is not installed: skipping" >&2
  exit 77
fi
[ -x "$build/tasklock" ] || { echo "run_sdk_tests: $build/tasklock is not built" >&2; exit 1; }

dir=$build/mcp-node
mkdir -p "$dir"
installed() {
  node -e 'const p=require(process.argv[1]); process.exit(p.version===process.argv[2]?0:1)' \
    "$dir/node_modules/@modelcontextprotocol/sdk/package.json" "$SDK_VERSION" 2>/dev/null
}
if ! installed; then
  echo "run_sdk_tests: installing @modelcontextprotocol/sdk@$SDK_VERSION into $dir" >&2
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error --save-exact \
    "@modelcontextprotocol/sdk@$SDK_VERSION" >&2
  installed || { echo "run_sdk_tests: the SDK did not install" >&2; exit 1; }
fi
cp "$src/tests/mcp/sdk_test.mjs" "$src/tests/mcp/sdk_child.mjs" "$dir/"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tasklock-mcp-sdk.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
TL_MCP_BIN=$build/tasklock TL_MCP_TMP=$tmp node --test-reporter=spec "$dir/sdk_test.mjs"

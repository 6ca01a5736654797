#!/usr/bin/env bash
# run-scenario.sh TL_TORTURE STORE SCENARIO [tl-torture options...]
#
# Runs one torture scenario against one store, providing the store:
#   sqlite    a temporary SQLite file (tl-torture --store sqlite:)
#   memory    the in-process store; the workers are threads
#   redis     $TL_TEST_REDIS_URI (tests/harness/with-servers), else a private server; the
#   postgres  $TL_TEST_POSTGRES_URI, else a private server. `restart` always uses a private
#             server (servers.sh), since it restarts it.
#   github    a private tl-github-server, spawned by tl-torture itself
#   etcd      always a private three-member cluster (servers.sh, tests/harness/etcd-cluster.sh),
#             whose members the leader-kill scenario kills, restarts and stops
# `partition` puts a tl-proxy (started by tl-torture) between half the workers and that store.
# Exits 77 (skipped) only when this build has no such store; a server that cannot be started
# fails the run. $TL_TORTURE_BUILD_SCALE (set by tests/torture/torture.cmake for sanitizer
# builds) scales the cycles and faults.
set -euo pipefail

bin=${1:?usage: run-scenario.sh TL_TORTURE STORE SCENARIO [options]}
store=${2:?usage: run-scenario.sh TL_TORTURE STORE SCENARIO [options]}
scenario=${3:?usage: run-scenario.sh TL_TORTURE STORE SCENARIO [options]}
shift 3
here=$(cd "$(dirname "$0")" && pwd)

rc=0
"$bin" --has-store "$store" || rc=$?
if [ "$rc" -ne 0 ]; then
  echo "run-scenario: this build has no $store store; skipped" >&2
  exit 77
fi

private=""
cleanup() {
  if [ -n "$private" ]; then
    "$here/servers.sh" stop "$store" "$private" || true
    rm -rf "$private"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

args=()
case "$store" in
  sqlite) url=sqlite: ;;
  memory) url=memory: ;;
  github) url=github: ;;
  redis | postgres)
    var=TL_TEST_REDIS_URI
    [ "$store" = postgres ] && var=TL_TEST_POSTGRES_URI
    url=${!var:-}
    if [ "$scenario" = restart ] || [ -z "$url" ]; then
      private=$(mktemp -d "${TMPDIR:-/tmp}/tl-torture-$store.XXXXXX")
      url=$("$here/servers.sh" start "$store" "$private")
      args+=(--restart-cmd "'$here/servers.sh' restart $store '$private'")
    fi
    ;;
  etcd)
    private=$(mktemp -d "${TMPDIR:-/tmp}/tl-torture-$store.XXXXXX")
    url=$("$here/servers.sh" start "$store" "$private")
    if [ "$scenario" = leader-kill ]; then
      args+=(--restart-cmd "'$here/servers.sh' fault $store '$private'")
    else
      args+=(--restart-cmd "'$here/servers.sh' restart $store '$private'")
    fi
    ;;
  *)
    echo "run-scenario: unknown store $store" >&2
    exit 2
    ;;
esac

"$bin" --store "$url" --scenario "$scenario" --scale "${TL_TORTURE_BUILD_SCALE:-1}" \
  "${args[@]}" "$@"

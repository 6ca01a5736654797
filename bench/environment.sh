#!/usr/bin/env bash
# environment.sh COMMAND -- the machine, the versions and the date of a benchmark run, as
# `key: value` lines (bench/results/environment.txt; bench/report.py renders them).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

first() { "$@" 2>&1 | head -n 1; }
pkg() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "not installed"; }
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5n | tail -n 1)
nodever() { # PACKAGE: its version in bench/node
  local f=bench/node/node_modules/$1/package.json
  [ -f "$f" ] && sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$f" | head -n 1 || echo "not installed"
}

echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "command: ${1:-bench/run.sh}"
echo "settings: REPS=$REPS CONTEND_REPS=$CONTEND_REPS SECONDS_PER=$SECONDS_PER CONTEND_SECONDS=$CONTEND_SECONDS HB_LOCKS=$HB_LOCKS HB_LOCKS_GITHUB=$HB_LOCKS_GITHUB HB_INTERVAL_MS=$HB_INTERVAL_MS HB_WINDOWS=$HB_WINDOWS HB_LOCKS_DIRECT=${HB_LOCKS_DIRECT:-1000} HB_DIRECT=${HB_DIRECT:-1} SQLITE_CYCLES=$SQLITE_CYCLES GH_K1_CS_MS=${GH_K1_CS_MS:-50} GH_CONTEND_SECONDS=${GH_CONTEND_SECONDS:-10} GH_CONTEND_REPS=${GH_CONTEND_REPS:-1} HB_LOCKS_ETCD=${HB_LOCKS_ETCD:-1000} HB_ETCD_TIMEOUT_MS=${HB_ETCD_TIMEOUT_MS:-6000} CLAIM_REPS=${CLAIM_REPS:-3} CLAIM_TASKS=${CLAIM_TASKS:-2000} CLAIM_TASKS_SHORT=${CLAIM_TASKS_SHORT:-200} CLAIM_PROCS=${CLAIM_PROCS// /,} MODES_REPS=${MODES_REPS:-3} MODES_SECONDS=${MODES_SECONDS:-1} MODES_READERS=${MODES_READERS:-8} MODES_WAITERS=${MODES_WAITERS// /,} MODES_CHECKS=${MODES_CHECKS:-200}"
echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src include cli 2>/dev/null || echo ' + uncommitted changes in src/include/cli')"
echo "build: $(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILD/CMakeCache.txt" 2>/dev/null) ($(basename "$BUILD")); stores: $(for s in GITHUB REDIS POSTGRES; do v=$(sed -n "s/^TL_WITH_$s:BOOL=//p" "$BUILD/CMakeCache.txt" 2>/dev/null); echo -n "${s,,}=$v "; done)"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "nproc: $(nproc)"
echo "memory: $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
echo "kernel: $(uname -sr)"
echo "virtualization: $(systemd-detect-virt 2>/dev/null || echo none) (hypervisor: $(lscpu 2>/dev/null | sed -n 's/^Hypervisor vendor: *//p'))"
echo "os: $(. /etc/os-release && echo "$PRETTY_NAME")"
echo "disk_for_tmp: $(df -hT "${TMPDIR:-/tmp}" 2>/dev/null | awk 'NR == 2 { print $2 " on " $1 }')"
echo "gcc: $(first gcc --version)"
echo "sqlite: $(pkg-config --modversion sqlite3 2>/dev/null) (libsqlite3 $(pkg libsqlite3-0))"
echo "redis-server: $(first redis-server --version)"
echo "hiredis: $(pkg-config --modversion hiredis 2>/dev/null)"
echo "postgres: $(first "$pgbin/postgres" --version)"
echo "pgbench: $(first "$pgbin/pgbench" --version)"
echo "libpq: $(pkg-config --modversion libpq 2>/dev/null)"
echo "libcurl: $(pkg-config --modversion libcurl 2>/dev/null)"
echo "python3: $(first /usr/bin/python3 --version)"
echo "python3-redis: $(pkg python3-redis) (redis-py $(/usr/bin/python3 -c 'import redis; print(redis.__version__)' 2>/dev/null || echo '?'))"
echo "node: $(first node --version)"
echo "redlock: $(nodever redlock)"
echo "etcd3: $(nodever etcd3)"
echo "ioredis: $(nodever ioredis)"
echo "flock: $(first flock --version)"
echo "etcd: $(etcd --version 2>/dev/null | head -n 1) / $(ETCDCTL_API=3 etcdctl version 2>/dev/null | head -n 1)"

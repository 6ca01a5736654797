#!/usr/bin/env bash
# bench/run.sh -- what `make bench` runs: tasklock against what users would pick instead, in one
# run, every server on 127.0.0.1, then docs/performance.md regenerated from the raw figures.
#
#   bench/run.sh                 everything (about 10 minutes on 2 cores)
#   BENCH_QUICK=1 bench/run.sh   fewer and shorter repetitions, to try the harness
#   BENCH_ONLY=contention bench/run.sh   only that section (of cycles, contention, heartbeat,
#                                github, diagnostics, serve,
#                                claim, sessions, modes; several: comma-separated): its CSV is
#                                measured again, the others' are kept, and the report is
#                                rendered from all of them; the run's own record goes to
#                                environment-SECTIONS.txt (environment.txt stays that of the
#                                last full run)
#
# Steps: the Debian packages (scripts/install-deps --bench) and the npm anchors (redlock with
# ioredis, and etcd3, pinned majors, into bench/node/); a Release build in $BUILD (default build-bench) of
# the library, the CLI, the GitHub test server and the drivers bench/bench_*.c, each store that
# compiles (one that does not is left out and reported); then, under
# tests/harness/with-servers (Redis, PostgreSQL, the GitHub test server) plus a private etcd
# (bench/start-etcd), the measurements below, each repetition interleaving ours with the floors
# and anchors it is compared to (their order rotates from one repetition to the next); then
# bench/report.py renders docs/performance.md from bench/results/*.csv.
#
#   cycles.csv      uncontended acquire+release cycles/s per store, floors and anchors; the CLI
#                   (etcd: bench_etcd's floors on the gateway, etcd's /v3/lock, node's etcd3)
#   contention.csv  4 and 8 processes on 1 key, with the line and without it (no_line, the
#                   baseline), side by side in each repetition; redis-py's Lock on 1 key
#   heartbeat.csv   CPU and memory of one manager holding 10,000 locks (GitHub: 1,000; etcd:
#                   1,000 with a short lock timeout, keep-alives and requests counted)
#   github.csv      requests and writes per operation; acquire time with 50/200 ms latency
#   diagnostics.csv the servers' own counters per cycle (Redis commandstats, PostgreSQL WAL) and
#                   where the Redis scripts' time goes (bench/redis_lua_cost.py)
#   serve.csv       `tasklock serve`: its CPU per refresh with 1,000 locks, idle and with 50
#                   event streams, against one CLI poll (list + log --json) in the same run
#                   (bench_serve; docs/serve.md quotes it: report.py does not read it)
#   claim.csv       P processes (1, 4, 8) draining M tasks: claim-next + release-and-claim-next
#                   (`work`'s loop), the naive acquire loop, the store's one-round-trip floor
#   sessions.csv    GitHub: the writes of M managers (1, 10) holding N locks (10, 100, 1,000)
#                   over K heartbeat intervals, with sessions and with per-claim heartbeats
#   modes.csv       shared locks: 8 readers on 1 key against 8 exclusive lockers (and 1 reader);
#                   the deadlock check's time and store requests with W waiters, against one
#                   busy claim (bench_modes), on the stores that have them
#   not_measured.csv  what could not be measured, and why
#   environment.txt   machine, versions, date, command
#
# Nothing is pinned to a CPU: with 2 cores, pinning the client and the server to one core each
# (or both to one) changes the loopback round trip by 2-3x; the figures are medians of
# repetitions taken as the scheduler places things, and the spread is shown.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
cd "$src" || exit 1

BUILD=${BUILD:-build-bench}
case "$BUILD" in /*) ;; *) BUILD="$src/$BUILD" ;; esac
RESULTS=${BENCH_RESULTS:-$src/bench/results}
export BUILD RESULTS

if [ -n "${BENCH_QUICK:-}" ]; then
  : "${REPS:=2}" "${CONTEND_REPS:=1}" "${SECONDS_PER:=0.7}" "${CONTEND_SECONDS:=1.5}"
  : "${HB_WINDOWS:=2}" "${HB_LOCKS:=1000}" "${HB_LOCKS_GITHUB:=200}" "${SQLITE_CYCLES:=300}"
  : "${HB_DIRECT:=0}" "${CLAIM_REPS:=1}" "${CLAIM_TASKS:=300}" "${CLAIM_TASKS_SHORT:=50}"
  : "${MODES_REPS:=1}" "${MODES_SECONDS:=0.5}" "${MODES_CHECKS:=50}"
fi
: "${REPS:=7}"            # repetitions of the uncontended cycles, the CLI and GitHub latency
: "${CONTEND_REPS:=5}"    # repetitions of the contended runs
: "${SECONDS_PER:=1}"     # seconds per uncontended measurement
: "${CONTEND_SECONDS:=2}" # seconds per contended measurement
: "${HB_WINDOWS:=3}"      # heartbeat: windows measured
: "${HB_INTERVAL_MS:=2000}"
: "${HB_LOCKS:=10000}"       # locks held on sqlite, redis, postgres
: "${HB_LOCKS_GITHUB:=1000}" # locks held on GitHub
: "${HB_LOCKS_DIRECT:=1000}"  # locks held at the default interval, measured directly
: "${HB_LOCKS_ETCD:=1000}"      # locks held on etcd (bench_etcd heartbeat)
: "${HB_ETCD_TIMEOUT_MS:=6000}" # their lock timeout: a 6 s lease, renewed every 2 s
: "${SQLITE_CYCLES:=1000}"   # bench_sqlite cycles per subject and repetition
: "${GH_K1_CS_MS:=200}"      # GitHub, one key: critical section in ms (see contend() below)
: "${GH_CONTEND_SECONDS:=10}" # GitHub: seconds per contended run (its waiters poll every 1 s)
: "${GH_CONTEND_REPS:=1}"     # GitHub: repetitions of the contended runs (the first ones)
: "${CLAIM_REPS:=3}"          # claim-next: repetitions
: "${CLAIM_TASKS:=2000}"      # claim-next: tasks drained per run (each call is given them all)
: "${CLAIM_TASKS_SHORT:=200}" # claim-next: the same with a short list of candidates
: "${CLAIM_PROCS:=1 4 8}"     # claim-next: worker processes
: "${SESS_LOCKS:=10 100 1000}"  # GitHub sessions: locks held
: "${SESS_MANAGERS:=1 10}"       # GitHub sessions: managers holding them
: "${SESS_TIMEOUT_MS:=2000}"     # GitHub sessions: lock timeout (heartbeat every 500 ms)
: "${SESS_INTERVALS:=8}"         # GitHub sessions: heartbeat intervals measured
: "${SESS_REPS:=1}"              # GitHub sessions: repetitions
: "${MODES_REPS:=3}"       # shared locks: repetitions of the readers' runs
: "${MODES_SECONDS:=1}"    # shared locks: seconds per readers' run
: "${MODES_READERS:=8}"    # shared locks: readers (and exclusive lockers) on the one key
: "${MODES_WAITERS:=1 10 100}" # deadlock checks: waiters planted in the store
: "${MODES_CHECKS:=200}"   # deadlock checks: checks (and busy claims) timed per store and W
export MODES_REPS MODES_SECONDS MODES_READERS MODES_WAITERS MODES_CHECKS
export SESS_LOCKS SESS_MANAGERS SESS_TIMEOUT_MS SESS_INTERVALS SESS_REPS
export REPS CONTEND_REPS SECONDS_PER CONTEND_SECONDS HB_WINDOWS HB_INTERVAL_MS HB_LOCKS \
  HB_LOCKS_GITHUB HB_LOCKS_DIRECT HB_LOCKS_ETCD HB_ETCD_TIMEOUT_MS SQLITE_CYCLES GH_K1_CS_MS GH_CONTEND_SECONDS \
  GH_CONTEND_REPS CLAIM_REPS CLAIM_TASKS CLAIM_TASKS_SHORT CLAIM_PROCS

log() { echo "bench: $*" >&2; }

# The sections this run measures (BENCH_ONLY), the CSV each writes, and where the run's record
# goes.
BENCH_ONLY=${BENCH_ONLY:-}
want() { [ -z "$BENCH_ONLY" ] || [[ ",$BENCH_ONLY," == *",$1,"* ]]; }
for sec in ${BENCH_ONLY//,/ }; do
  case $sec in
    cycles | contention | heartbeat | github | diagnostics | serve | claim | sessions | modes) ;;
    *) log "BENCH_ONLY: no section \"$sec\" (cycles, contention, heartbeat, github, diagnostics, serve, claim, sessions, modes)"; exit 2 ;;
  esac
done
if [ -n "$BENCH_ONLY" ]; then
  ENVFILE="$RESULTS/environment-${BENCH_ONLY//,/-}.txt"
else
  ENVFILE="$RESULTS/environment.txt"
fi
export BENCH_ONLY ENVFILE

# ---------------------------------------------------------------------------------------------
# Outside the servers: packages, the npm anchor, the build; then this script again inside
# with-servers; then the report.
# ---------------------------------------------------------------------------------------------
if [ "${1:-}" != "--inside" ]; then
  t_start=$(date +%s)
  mkdir -p "$RESULTS" "$RESULTS/tmp"
  if [ -n "$BENCH_ONLY" ]; then
    for sec in ${BENCH_ONLY//,/ }; do rm -f "$RESULTS/$sec.csv"; done
    rm -f "$ENVFILE" "$RESULTS"/tmp/*.log "$RESULTS"/tmp/*.csv
    # Only the re-run sections' lines of what could not be measured go: the others' stay true.
    if [ -f "$RESULTS/not_measured.csv" ]; then
      keep=$(awk -F, -v only="$BENCH_ONLY" 'BEGIN { n = split(only, s, ","); for (i = 1; i <= n; i++) drop[s[i]] = 1 }
        !($1 in drop)' "$RESULTS/not_measured.csv")
      if [ -n "$keep" ]; then printf '%s\n' "$keep" >"$RESULTS/not_measured.csv"; else rm -f "$RESULTS/not_measured.csv"; fi
    fi
  else
    rm -f "$RESULTS"/*.csv "$RESULTS"/environment*.txt "$RESULTS"/tmp/*.log "$RESULTS"/tmp/*.csv
  fi
  cmd="${BENCH_COMMAND:-bench/run.sh}"
  [ -n "$BENCH_ONLY" ] && cmd="BENCH_ONLY=$BENCH_ONLY $cmd"

  if ! scripts/install-deps --bench; then
    log "scripts/install-deps --bench failed: missing tools are reported as not measured"
  fi

  # The npm anchors, pinned to their major versions, into bench/node/ (not part of the sources).
  if command -v npm >/dev/null 2>&1; then
    if [ ! -f bench/node/node_modules/redlock/package.json ] ||
       [ ! -f bench/node/node_modules/ioredis/package.json ] ||
       [ ! -f bench/node/node_modules/etcd3/package.json ]; then
      log "installing redlock@4, ioredis@5 and etcd3@1 into bench/node"
      npm install --prefix bench/node --no-audit --no-fund --loglevel=error \
        redlock@4 ioredis@5 etcd3@1 >&2 || log "npm install failed: redlock and etcd3 are not measured"
    fi
  fi

  # The build: Release; a store whose sources do not compile yet is switched off and reported.
  declare -A with=([GITHUB]=ON [REDIS]=ON [POSTGRES]=ON)
  declare -A broken=() # drivers that do not compile: left out, their sections say so
  built=""
  for attempt in 1 2 3 4 5 6; do
    flags=(-DCMAKE_BUILD_TYPE=Release)
    for s in GITHUB REDIS POSTGRES; do flags+=("-DTL_WITH_$s=${with[$s]}"); done
    if ! cmake -S . -B "$BUILD" "${flags[@]}" >"$RESULTS/tmp/cmake.log" 2>&1; then
      tail -n 20 "$RESULTS/tmp/cmake.log" >&2
    fi
    targets=(tl_static)
    for f in bench/bench_*.c; do
      n=$(basename "$f" .c)
      [ -n "${broken[$n]:-}" ] && continue
      grep -q "^$n:" <(cmake --build "$BUILD" --target help 2>/dev/null | sed 's/^\.\.\. //; s/ .*//; s/$/:/') &&
        targets+=("$n")
    done
    echo "== build attempt $attempt: ${flags[*]}" >>"$RESULTS/tmp/build.log"
    if cmake --build "$BUILD" -j "$(nproc)" --target "${targets[@]}" >"$RESULTS/tmp/build-$attempt.log" 2>&1; then
      cat "$RESULTS/tmp/build-$attempt.log" >>"$RESULTS/tmp/build.log"
      built=1
      break
    fi
    off=""
    for s in github redis postgres; do
      S=${s^^}
      pat="src/stores/${s}[a-z_]*\.c:[0-9]+:[0-9]+: (fatal )?error"
      [ $s = github ] && pat="src/(stores/github[a-z_]*|http)\.c:[0-9]+:[0-9]+: (fatal )?error"
      if [ "${with[$S]}" = ON ] && grep -Eq "$pat" "$RESULTS/tmp/build-$attempt.log"; then
        with[$S]=OFF
        off="$off $s"
      fi
    done
    while read -r n; do
      [ -n "$n" ] || continue
      broken[$n]=1
      off="$off $n"
    done < <(grep -Eo "bench/bench_[a-z_]+\.c:[0-9]+:[0-9]+: (fatal )?error" "$RESULTS/tmp/build-$attempt.log" |
               sed 's|^bench/||; s|\.c:.*||' | sort -u)
    cat "$RESULTS/tmp/build-$attempt.log" >>"$RESULTS/tmp/build.log"
    if [ -z "$off" ]; then
      grep -E "error" "$RESULTS/tmp/build-$attempt.log" | head -n 20 >&2
      log "the build failed, not in a store: nothing to measure"
      exit 1
    fi
    log "the$off store(s) or driver(s) do not compile now: building without them"
  done
  [ -n "$built" ] || { log "no build"; exit 1; }
  for s in GITHUB REDIS POSTGRES; do
    [ "${with[$s]}" = ON ] || echo "all,${s,,},,store not in this build: its sources do not compile (see $RESULTS/tmp/build.log)" >>"$RESULTS/not_measured.csv"
  done
  for n in "${!broken[@]}"; do
    line="all,all,$n,$n does not compile now (see bench/results/tmp/build.log)"
    grep -qxF "$line" "$RESULTS/not_measured.csv" 2>/dev/null || echo "$line" >>"$RESULTS/not_measured.csv"
    rm -f "$BUILD/$n" # an older binary would measure against the library before the change
  done
  # The CLI and the GitHub test server: each optional.
  cmake --build "$BUILD" -j "$(nproc)" --target tasklock_cli >"$RESULTS/tmp/build-cli.log" 2>&1 ||
    log "the CLI does not build now (see $RESULTS/tmp/build-cli.log)"
  cmake --build "$BUILD" -j "$(nproc)" --target tl_github_server >"$RESULTS/tmp/build-ghs.log" 2>&1 ||
    log "the GitHub test server does not build now (see $RESULTS/tmp/build-ghs.log)"

  # The machine, the versions, the date, the command.
  bench/environment.sh "$cmd" >"$ENVFILE"

  export TL_BUILD_DIR="$BUILD" TL_GITHUB_SERVER_BIN="$BUILD/tl-github-server"
  log "starting the servers (tests/harness/with-servers) and measuring"
  tests/harness/with-servers "$here/run.sh" --inside
  rc=$?
  echo "load_average_end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$ENVFILE"
  echo "runtime_s: $(($(date +%s) - t_start))" >>"$ENVFILE"
  if [ $rc -ne 0 ]; then
    log "the measurements failed (exit $rc)"
    exit $rc
  fi
  python3 bench/report.py "$RESULTS" docs/performance.md || exit 1
  log "wrote docs/performance.md and $RESULTS/*.csv in $(($(date +%s) - t_start)) s"
  exit 0
fi

# ---------------------------------------------------------------------------------------------
# Inside with-servers: TL_TEST_REDIS_URI, TL_TEST_POSTGRES_URI, TL_TEST_GITHUB_* are set.
# ---------------------------------------------------------------------------------------------
B=$BUILD
header="rep,store,subject,config,metric,value"
for f in cycles contention heartbeat github serve claim sessions modes; do
  want "$f" || continue
  [ -f "$RESULTS/$f.csv" ] || echo "$header" >"$RESULTS/$f.csv"
done
[ -f "$RESULTS/not_measured.csv" ] || true
scratch=$(mktemp -d "${TMPDIR:-/tmp}/tasklock-bench.XXXXXX")
chmod 755 "$scratch"
etcd_pid=""
cleanup() {
  [ -n "$etcd_pid" ] && kill "$etcd_pid" 2>/dev/null && wait "$etcd_pid" 2>/dev/null
  rm -rf "$scratch"
}
trap cleanup EXIT

declare -A missing_said=()
missing() { # SECTION STORE SUBJECT REASON: said once per section/store/subject
  local k="$1/$2/$3"
  [ -n "${missing_said[$k]:-}" ] && return 0
  missing_said[$k]=1
  echo "$1,$2,$3,${4//,/;}" >>"$RESULTS/not_measured.csv"
  log "not measured: $1 $2 $3: $4"
}

# Runs a measurement; on failure notes it (with the last line it wrote) as not measured.
run() { # SECTION STORE SUBJECT CMD...
  local sec=$1 st=$2 sub=$3
  shift 3
  local out="$scratch/last.log"
  "$@" >"$out.stdout" 2>"$out"
  local rc=$?
  cat "$out" "$out.stdout" >>"$RESULTS/tmp/measure.log"
  cat "$out" "$out.stdout" >&2
  if [ $rc -eq 3 ] && grep -q "^not measured" "$out.stdout"; then
    missing "$sec" "$st" "$sub" "$(sed 's/^not measured: //' "$out.stdout" | head -n 1)"
  elif [ $rc -ne 0 ]; then
    missing "$sec" "$st" "$sub" "failed (exit $rc): $(tail -n 1 "$out" | cut -c1-200)"
  fi
  return 0
}

has() { [ -x "$B/$1" ]; }
tool() { command -v "$1" >/dev/null 2>&1; }
in_build() { # SCHEME: whether the library has that store
  has bench_cycle && "$B/bench_cycle" -l "$1" >/dev/null 2>&1
}
why_not() { # SCHEME SERVER-URL SERVER-NAME
  if [ -z "$2" ]; then
    echo "no $3 (the harness did not start one)"
  elif ! in_build "$1"; then
    echo "this build has no $1 store"
  else
    echo "a driver is missing from the build"
  fi
}

PY=/usr/bin/python3 # Debian's, which has python3-redis (not a virtualenv's)
redis_url=${TL_TEST_REDIS_URI:-}
pg_url=${TL_TEST_POSTGRES_URI:-}
gh_api=${TL_TEST_GITHUB_URL:-}
export GH_TOKEN=${TL_TEST_GITHUB_TOKEN:-test-token}
gh_url="github://${TL_TEST_GITHUB_REPO:-acme/widgets}?api_url=$gh_api&write_budget=off"
redis_port=${redis_url#redis://127.0.0.1:}
redis_port=${redis_port%%/*}
pg_port=${pg_url##*127.0.0.1:}
pg_port=${pg_port%%/*}
pgbench=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -n 1)
psql=$(command -v psql || ls /usr/lib/postgresql/*/bin/psql 2>/dev/null | tail -n 1)

# The private etcd: the etcd store's cycles, floors and anchors (with `etcdctl lock`), its
# contention and its heartbeat (sections 1-3), its shared locks and deadlock checks (section 9).
etcd_ep=""
if { want cycles || want contention || want heartbeat || want modes; } && tool etcd && tool etcdctl; then
  mkdir -p "$scratch/etcd"
  if out=$(bench/start-etcd "$scratch/etcd"); then
    etcd_ep=${out#*=}
    etcd_pid=$(cat "$scratch/etcd/pid")
    log "started etcd (pid $etcd_pid) on $etcd_ep"
  fi
fi
echo "load_average_start: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$ENVFILE"
pressure() { # what else was running: the kernel's pressure stall figures, where it has them
  local r
  for r in cpu io; do
    [ -r "/proc/pressure/$r" ] && echo -n "$r $(awk '/^some/ { print $3 }' "/proc/pressure/$r" | sed 's/avg60=//')% "
  done
}
echo "pressure_start: $(pressure)" >>"$ENVFILE"

# Pinning, for the uncontended Redis and PostgreSQL cycles only (BENCH_PIN=0: none): the
# loopback round trip is about 20 us when client and server share a core and 50-70 us across
# cores, and the scheduler picks one or the other for each process, which would make ours and
# its floor see different round trips. With BENCH_PIN=1 (the default on 2 or more cores) the
# servers run on the last CPU and every client of that section on CPU 0: cross-core, as a
# server on another machine would be. Contended runs are never pinned.
PINC=()
: "${BENCH_PIN:=1}"
server_pids() {
  local p c
  for p in $(pgrep -f "redis-server 127.0.0.1:$redis_port" 2>/dev/null) \
           $(pgrep -f "postgres -D .* -p $pg_port" 2>/dev/null); do
    echo "$p"
    for c in $(pgrep -P "$p"); do
      echo "$c"
      pgrep -P "$c"
    done
  done
}
pin_servers() {
  local n last
  n=$(nproc)
  last=$((n - 1))
  if [ "$BENCH_PIN" = 1 ] && [ "$n" -ge 2 ] && tool taskset; then
    for p in $(server_pids); do taskset -a -p -c "$last" "$p" >/dev/null 2>&1; done
    PINC=(taskset -c 0)
    echo "pinning: section 1, Redis and PostgreSQL: the servers on CPU $last, their clients (ours, floors, anchors) on CPU 0" >>"$ENVFILE"
  else
    echo "pinning: none" >>"$ENVFILE"
  fi
}
unpin_servers() {
  local n
  n=$(nproc)
  if [ ${#PINC[@]} -gt 0 ]; then
    for p in $(server_pids); do taskset -a -p -c "0-$((n - 1))" "$p" >/dev/null 2>&1; done
  fi
  PINC=()
}

gh_reset() { [ -n "$gh_api" ] && has bench_github && "$B/bench_github" -a "$gh_api" -m reset >/dev/null; }

# Runs the commands of one repetition, rotating where it starts so that drift over a repetition
# does not always fall on the same subject.
rotate_run() { # REP CMD-STRING...
  local rep=$1
  shift
  local n=$# i
  for ((i = 0; i < n; i++)); do
    local j=$(((i + rep) % n + 1))
    eval "${!j}"
  done
}

# ---- 1. uncontended cycles, floors, anchors; the CLI ----------------------------------------
C="$RESULTS/cycles.csv"
T=$SECONDS_PER
Tint=$(awk -v t="$T" 'BEGIN { printf "%d", t + 0.5 }') # pgbench -T takes whole seconds
[ "$Tint" -ge 1 ] || Tint=1

sqlite_round() { # REP
  has bench_sqlite || { missing cycles sqlite ours "bench_sqlite not built"; return; }
  local tmp="$scratch/sqlite-$1.csv"
  "$B/bench_sqlite" -d "$scratch" -n "$SQLITE_CYCLES" -r 1 -c "$tmp" 2>&1 | tee -a "$RESULTS/tmp/measure.log" >&2 ||
    { missing cycles sqlite ours "bench_sqlite failed"; return; }
  # rep,floor_cycles_per_s,ours_cycles_per_s,ratio,ours_p50_ms,ours_p99_ms
  tail -n 1 "$tmp" | awk -F, -v r="$1" '{
    printf "%d,sqlite,floor-2tx,,cycles_per_s,%s\n", r, $2
    printf "%d,sqlite,ours,,cycles_per_s,%s\n", r, $3
    printf "%d,sqlite,ours,,cycle_p50_ms,%s\n", r, $5
    printf "%d,sqlite,ours,,cycle_p99_ms,%s\n", r, $6 }' >>"$C"
}

redis_benchmark_floor() { # REP
  tool redis-benchmark || { missing cycles redis floor-redis-benchmark "redis-benchmark not installed"; return; }
  local n
  n=$(awk -v t="$T" 'BEGIN { printf "%d", t * 12000 }')
  local out
  out=$("${PINC[@]}" redis-benchmark -h 127.0.0.1 -p "$redis_port" -c 1 -n "$n" -t ping --csv 2>/dev/null) ||
    { missing cycles redis floor-redis-benchmark "redis-benchmark failed"; return; }
  echo "$out" | tr -d '"' | awk -F, -v r="$1" '$1 == "PING_MBULK" {
    printf "%d,redis,floor-redis-benchmark,,rtt_per_s,%s\n", r, $2
    printf "%d,redis,floor-redis-benchmark,,cycles_per_s,%.1f\n", r, $2 / 2
    printf "%d,redis,floor-redis-benchmark,,rtt_p50_ms,%s\n", r, $5
    printf "%d,redis,floor-redis-benchmark,,rtt_p99_ms,%s\n", r, $7 }' >>"$C"
}

pgbench_run() { # REP SUBJECT SCRIPT
  [ -n "$pgbench" ] || { missing cycles postgres "$2" "pgbench not installed"; return; }
  local out tps
  out=$("${PINC[@]}" "$pgbench" -n -c 1 -T "$Tint" -f "$3" -h 127.0.0.1 -p "$pg_port" -U tasklock tasklock 2>&1) ||
    { missing cycles postgres "$2" "pgbench failed: $(echo "$out" | tail -n 1)"; return; }
  tps=$(echo "$out" | awk '/^tps = / { print $3; exit }')
  lat=$(echo "$out" | awk '/^latency average = / { print $4; exit }')
  echo "$1,postgres,$2,,cycles_per_s,$tps" >>"$C"
  echo "$1,postgres,$2,,cycle_mean_ms,$lat" >>"$C"
}

if [ -n "$pg_url" ] && [ -n "$psql" ]; then
  "$psql" -X -q "$pg_url" -c "CREATE TABLE IF NOT EXISTS bench_pgbench_rows (key text PRIMARY KEY, v int)" >/dev/null 2>&1 ||
    log "could not create the pgbench table"
fi

# The CLI: one-machine anchors, where process start dominates.
# shellcheck disable=SC2034 # cli_db is used by the commands rotate_run evals
cli_db="sqlite:$scratch/cli.db" # used in the eval'd commands below
touch "$scratch/flock.lock"

if want cycles; then
log "1/5: uncontended cycles ($REPS repetitions of ${T} s each)"
pin_servers
for rep in $(seq 1 "$REPS"); do
  log "cycles: repetition $rep of $REPS"
  sqlite_round "$rep"
  run cycles memory ours "$B/bench_cycle" -u memory: -t 0.5 -o "$C" -r "$rep" -S memory

  if [ -n "$redis_url" ] && in_build redis; then
    rotate_run "$rep" \
      'redis_benchmark_floor $rep' \
      'run cycles redis floor-ping "${PINC[@]}" "$B/bench_redis" -o "$C" -r $rep "$redis_url" $T ping' \
      'run cycles redis floor-eval "${PINC[@]}" "$B/bench_redis" -o "$C" -r $rep "$redis_url" $T eval' \
      'run cycles redis ours "${PINC[@]}" "$B/bench_cycle" -u "$redis_url" -t $T -o "$C" -r $rep -S redis' \
      'run cycles redis ours-history-off "${PINC[@]}" "$B/bench_cycle" -u "$redis_url?history_max=0" -t $T -o "$C" -r $rep -S redis -s ours-history-off' \
      'if $PY -c "import redis" 2>/dev/null; then run cycles redis anchor-redis-py "${PINC[@]}" $PY bench/anchor_redis_py.py cycle "$redis_url" $T --csv "$C" --rep $rep; else missing cycles redis anchor-redis-py "python3-redis not installed"; fi' \
      'if [ -f bench/node/node_modules/redlock/package.json ] && tool node; then run cycles redis anchor-redlock "${PINC[@]}" env NODE_PATH=bench/node/node_modules node bench/anchor_redlock.js "$redis_url" $T --csv "$C" --rep $rep; else missing cycles redis anchor-redlock "redlock/ioredis not installed (npm)"; fi'
  else
    missing cycles redis all "$(why_not redis "$redis_url" "Redis server")"
  fi

  if [ -n "$pg_url" ] && in_build postgres; then
    rotate_run "$rep" \
      'pgbench_run $rep floor-row-pgbench bench/pgbench_row.sql' \
      'pgbench_run $rep anchor-advisory-pgbench bench/pgbench_advisory.sql' \
      'run cycles postgres floor-row-libpq "${PINC[@]}" "$B/bench_postgres" -o "$C" -r $rep "$pg_url" $T row' \
      'run cycles postgres anchor-advisory-libpq "${PINC[@]}" "$B/bench_postgres" -o "$C" -r $rep "$pg_url" $T advisory' \
      'run cycles postgres ours "${PINC[@]}" "$B/bench_cycle" -u "$pg_url" -t $T -o "$C" -r $rep -S postgres'
  else
    missing cycles postgres all "$(why_not postgres "$pg_url" "PostgreSQL server")"
  fi

  # etcd: bench_etcd's modes (ours through the public API, the bare gateway floors, etcd's own
  # lock service) and node's etcd3, one after the other. Not pinned: etcd is not in
  # server_pids (a Go server pinned to one CPU with all its threads is not how it runs).
  if [ -n "$etcd_ep" ] && in_build etcd && has bench_etcd; then
    rotate_run "$rep" \
      'run cycles etcd floor-txn "$B/bench_etcd" -o "$C" -r $rep "$etcd_ep" $T floor' \
      'run cycles etcd floor-store-txns "$B/bench_etcd" -o "$C" -r $rep "$etcd_ep" $T floor-store' \
      'run cycles etcd ours "$B/bench_etcd" -o "$C" -r $rep "$etcd_ep" $T lib' \
      'run cycles etcd anchor-v3lock "$B/bench_etcd" -o "$C" -r $rep "$etcd_ep" $T v3lock' \
      'if [ -f bench/node/node_modules/etcd3/package.json ] && tool node; then run cycles etcd anchor-etcd3 env NODE_PATH=bench/node/node_modules node bench/anchor_etcd3.js "$etcd_ep" $T --csv "$C" --rep $rep; else missing cycles etcd anchor-etcd3 "etcd3 not installed (npm)"; fi'
  elif [ -z "$etcd_ep" ]; then
    missing cycles etcd all "etcd (etcd-server, etcd-client) not installed or did not start"
  else
    missing cycles etcd all "$(why_not etcd "$etcd_ep" "etcd")"
  fi

  if [ -n "$gh_api" ] && in_build github && has bench_github; then
    gh_reset
    # Round the 100 issues: each cycle leaves a completion comment on its issue.
    run cycles github ours "$B/bench_cycle" -u "$gh_url" -n 1 -K 100 -t $T -o "$C" -r "$rep" -S github
  else
    missing cycles github all "$(why_not github "$gh_api" "GitHub test server")"
  fi

  cli_cmds=()
  if has tasklock; then
    cli_cmds+=('run cycles cli ours-run "$B/bench_exec" -t $T -o "$C" -r $rep -S cli -s ours-run -- "$B/tasklock" -q -s "$cli_db" run cli-key -- true')
  else
    missing cycles cli ours-run "the tasklock CLI is not built"
  fi
  if tool flock; then
    cli_cmds+=('run cycles cli anchor-flock "$B/bench_exec" -t $T -o "$C" -r $rep -S cli -s anchor-flock -- flock "$scratch/flock.lock" true')
  else
    missing cycles cli anchor-flock "flock (util-linux) not installed"
  fi
  if [ -n "$etcd_ep" ] && has tasklock && in_build etcd; then
    cli_cmds+=('run cycles cli ours-run-etcd "$B/bench_exec" -t $T -o "$C" -r $rep -S cli -s ours-run-etcd -- "$B/tasklock" -q -s "etcd://$etcd_ep" run cli-key -- true')
  fi
  if [ -n "$etcd_ep" ]; then
    cli_cmds+=('run cycles cli anchor-etcdctl "$B/bench_exec" -t $T -o "$C" -r $rep -S cli -s anchor-etcdctl -- env ETCDCTL_API=3 etcdctl --endpoints="$etcd_ep" lock bench-L true')
  else
    missing cycles cli anchor-etcdctl "etcd (etcd-server, etcd-client) not installed or did not start"
  fi
  [ ${#cli_cmds[@]} -gt 0 ] && rotate_run "$rep" "${cli_cmds[@]}"
done

unpin_servers
fi # cycles

# ---- 2. contention: the line against no_line -------------------------------------------------
# P processes (4 and 8) on one key in a tight loop, each configuration twice in a row: with the
# line (the default) and without it (bench_contend -L: struct tl_options.no_line, waiters poll
# and race as before the line), in an order that alternates from one repetition to the next, so
# that the ratios of one repetition compare runs taken side by side. A store without a line in
# this build (bench_contend -Q) runs once (the two would be the same code). GitHub: its one-key
# critical section lasts GH_K1_CS_MS (below), and the test server's request counters are read
# around the run (-a): the requests and writes of one hand-over.
K="$RESULTS/contention.csv"
if want contention; then
log "2/5: contention ($CONTEND_REPS repetitions of ${CONTEND_SECONDS} s each, line and no_line)"
# GitHub, one key: every critical section leaves a completion comment on the issue, and every
# 100 comments cost each list read one more request, so a tight loop on one issue (hundreds of
# comments a second) would measure pagination more than locking. So on GitHub the one-key
# critical section lasts GH_K1_CS_MS (a GitHub-held task is long anyway); the issue's comment
# count at the end is recorded. Its waiters poll the issue every second, so a hand-over takes
# about that long: its runs last GH_CONTEND_SECONDS, long enough for every one of 8 workers to
# get its turn, in the first GH_CONTEND_REPS repetitions only.
contend() { # REP STORE URL [extra args]
  local rep=$1 st=$2 url=$3
  shift 3
  local p cs modes m secs=$CONTEND_SECONDS
  if [ "$("$B/bench_contend" -u "$url" -Q 2>/dev/null)" = line ]; then
    modes=("" -L)
    ((rep % 2 == 0)) && modes=(-L "")
  else
    modes=("")
    echo "$rep,$st,ours,,has_line,0" >>"$K"
  fi
  for p in 4 8; do
    for m in "${modes[@]}"; do
      cs=()
      if [ "$st" = github ]; then
        gh_reset
        cs=(-c "$GH_K1_CS_MS" -a "$gh_api")
        secs=$GH_CONTEND_SECONDS
      fi
      # shellcheck disable=SC2086 # $m is empty or -L
      run contention "$st" "ours${m:+-no-line}-p$p" "$B/bench_contend" -u "$url" -p $p -K 1 \
        -t "$secs" "${cs[@]}" -o "$K" -r "$rep" -S "$st" $m "$@"
      if [ "$st" = github ]; then
        echo "$rep,github,ours${m:+-no-line},p$p-k1-cs$GH_K1_CS_MS,issue_comments_after,$("$B/bench_github" -a "$gh_api" -m comments -n 1)" >>"$K"
      fi
    done
  done
}
for rep in $(seq 1 "$CONTEND_REPS"); do
  log "contention: repetition $rep of $CONTEND_REPS"
  has bench_contend || { missing contention all ours "bench_contend not built"; break; }
  contend "$rep" sqlite "sqlite:$scratch/contend-$rep.db"
  if [ -n "$redis_url" ] && in_build redis; then
    contend "$rep" redis "$redis_url"
    if $PY -c "import redis" 2>/dev/null; then
      for p in 4 8; do
        run contention redis "anchor-redis-py-p$p" $PY bench/anchor_redis_py.py contend "$redis_url" \
          "$CONTEND_SECONDS" $p --csv "$K" --rep "$rep"
      done
    else
      missing contention redis anchor-redis-py "python3-redis not installed"
    fi
  else
    missing contention redis all "$(why_not redis "$redis_url" "Redis server")"
  fi
  if [ -n "$pg_url" ] && in_build postgres; then
    contend "$rep" postgres "$pg_url"
  else
    missing contention postgres all "$(why_not postgres "$pg_url" "PostgreSQL server")"
  fi
  if [ -n "$etcd_ep" ] && in_build etcd; then
    contend "$rep" etcd "etcd://$etcd_ep"
  else
    missing contention etcd all "$(why_not etcd "$etcd_ep" "etcd")"
  fi
  if [ -n "$gh_api" ] && in_build github; then
    [ "$rep" -le "$GH_CONTEND_REPS" ] && contend "$rep" github "$gh_url" -n 1
  else
    missing contention github all "$(why_not github "$gh_api" "GitHub test server")"
  fi
done
fi # contention

# ---- 3. heartbeat cost --------------------------------------------------------------------------
H="$RESULTS/heartbeat.csv"
if want heartbeat; then
log "3/5: heartbeat cost ($HB_LOCKS locks; GitHub $HB_LOCKS_GITHUB)"
if has bench_heartbeat; then
  hb() { # STORE URL LOCKS DEFAULT_INTERVAL_MS [extra]
    local st=$1 url=$2 n=$3 def=$4
    shift 4
    run heartbeat "$st" ours "$B/bench_heartbeat" -u "$url" -N "$n" -i "$HB_INTERVAL_MS" -D "$def" \
      -w "$HB_WINDOWS" -o "$H" -r 1 -S "$st" "$@"
  }
  # (a) Measured directly: 1,000 locks at the default interval itself (30 s), one window of a
  # little over two intervals; sqlite, redis and postgres at once, each its own process (each
  # counts only its own CPU time), so that this takes two intervals in all. (GitHub's default
  # interval is 75 s: it is only extrapolated, below.)
  if [ "${HB_DIRECT:-1}" = 1 ]; then
    log "heartbeat: $HB_LOCKS_DIRECT locks at the default interval, measured directly (about 65 s)"
    pids=()
    hbd() { # STORE URL LOCKS INTERVAL_MS [extra]
      local st=$1 url=$2 n=$3 iv=$4
      shift 4
      "$B/bench_heartbeat" -u "$url" -N "$n" -i "$iv" -D "$iv" -w 1 \
        -t "$(awk -v i="$iv" 'BEGIN { print 2 * i / 1000 + 1 }')" -s 0 -k "bench-hbd-$st" \
        -o "$H" -r 1 -S "$st" "$@" >"$scratch/hbd-$st.log" 2>&1 &
      pids+=($!)
    }
    hbd sqlite "sqlite:$scratch/heartbeat-direct.db" "$HB_LOCKS_DIRECT" 30000
    if [ -n "$redis_url" ] && in_build redis; then hbd redis "$redis_url" "$HB_LOCKS_DIRECT" 30000; fi
    if [ -n "$pg_url" ] && in_build postgres; then hbd postgres "$pg_url" "$HB_LOCKS_DIRECT" 30000; fi
    for p in "${pids[@]}"; do wait "$p" || log "a direct heartbeat run failed (exit $?)"; done
    cat "$scratch"/hbd-*.log | tee -a "$RESULTS/tmp/measure.log" >&2
  fi
  # (b) Extrapolated: HB_LOCKS locks renewed every HB_INTERVAL_MS, CPU per renewal.
  hb sqlite "sqlite:$scratch/heartbeat.db" "$HB_LOCKS" 30000
  if [ -n "$redis_url" ] && in_build redis; then hb redis "$redis_url" "$HB_LOCKS" 30000; else missing heartbeat redis ours "$(why_not redis "$redis_url" "Redis server")"; fi
  if [ -n "$pg_url" ] && in_build postgres; then hb postgres "$pg_url" "$HB_LOCKS" 30000; else missing heartbeat postgres ours "$(why_not postgres "$pg_url" "PostgreSQL server")"; fi
  # etcd: HB_LOCKS_ETCD locks with a lock timeout of HB_ETCD_TIMEOUT_MS (renewed every third of
  # it), the heartbeat thread's keep-alives and requests counted, etcd's own CPU read too.
  if [ -n "$etcd_ep" ] && in_build etcd && has bench_etcd; then
    run heartbeat etcd ours "$B/bench_etcd" -N "$HB_LOCKS_ETCD" -T "$HB_ETCD_TIMEOUT_MS" \
      -w "$HB_WINDOWS" -P "$etcd_pid" -o "$H" -r 1 "$etcd_ep" 0 heartbeat
  else
    missing heartbeat etcd ours "$(why_not etcd "$etcd_ep" "etcd")"
  fi
  if [ -n "$gh_api" ] && in_build github; then
    # Issues 1..N on the test server (it starts with 100); the default interval is a quarter
    # of the 5 min lock timeout.
    hb github "$gh_url" "$HB_LOCKS_GITHUB" 75000 -n 1 -a "$gh_api"
  else
    missing heartbeat github ours "$(why_not github "$gh_api" "GitHub test server")"
  fi
else
  missing heartbeat all ours "bench_heartbeat not built"
fi

fi # heartbeat

# ---- 4. GitHub: requests per operation, acquire under latency -----------------------------------
G="$RESULTS/github.csv"
if want github; then
log "4/5: GitHub requests per operation and latency"
if [ -n "$gh_api" ] && in_build github && has bench_github; then
  for rep in $(seq 1 "$REPS"); do
    run github github requests "$B/bench_github" -a "$gh_api" -m requests -o "$G" -r "$rep"
    rotate_run "$rep" \
      'run github github latency0 "$B/bench_github" -a "$gh_api" -m latency -L 0 -o "$G" -r $rep' \
      'run github github latency50 "$B/bench_github" -a "$gh_api" -m latency -L 50 -o "$G" -r $rep' \
      'run github github latency200 "$B/bench_github" -a "$gh_api" -m latency -L 200 -o "$G" -r $rep'
  done
else
  missing github github all "$(why_not github "$gh_api" "GitHub test server")"
fi
fi # github

# ---- 5. diagnostics: the servers' own counters around one more run of each -------------------
D="$RESULTS/diagnostics.csv"
if want diagnostics; then
echo "$header" >"$D"
log "5/5: diagnostics (server-side cost per cycle)"
cycles_of() { awk -F, '$5 == "cycles" { print $6 }' "$1" | tail -n 1; }
if [ -n "$redis_url" ] && in_build redis && tool redis-cli; then
  rcli() { redis-cli -h 127.0.0.1 -p "$redis_port" "$@"; }
  # usec_per_call of each command from INFO commandstats, as rows SUBJECT,cmd_usec_per_call
  redis_stats() { # SUBJECT
    rcli info commandstats | tr -d '\r' | awk -F'[:,=]' -v who="$1" '/^cmdstat_/ {
      cmd = substr($1, 9)
      if ($3 > 0) {
        printf "1,redis,%s,,%s_usec_per_call,%s\n", who, cmd, $7
        printf "1,redis,%s,,%s_calls,%s\n", who, cmd, $3
      }
    }' >>"$D"
  }
  rcli config resetstat >/dev/null
  "$B/bench_cycle" -u "$redis_url" -t 1 -o "$scratch/d.csv" -S redis 2>/dev/null
  redis_stats ours
  rcli config resetstat >/dev/null
  $PY bench/anchor_redis_py.py cycle "$redis_url" 1 2>/dev/null
  redis_stats anchor-redis-py
  rcli config resetstat >/dev/null
  redis-benchmark -h 127.0.0.1 -p "$redis_port" -c 1 -n 20000 -t ping -q >/dev/null 2>&1
  redis_stats floor-redis-benchmark
  if $PY -c "import redis" 2>/dev/null; then
    $PY bench/redis_lua_cost.py "$redis_url" src/stores/redis_scripts.h --csv "$D" >/dev/null ||
      missing diagnostics redis lua-cost "bench/redis_lua_cost.py failed"
  else
    missing diagnostics redis lua-cost "python3-redis not installed"
  fi
fi
if [ -n "$pg_url" ] && in_build postgres && [ -n "$psql" ]; then
  pq() { "$psql" -X -qAt "$pg_url" -c "$1"; }
  pg_wal() { # SUBJECT CYCLES
    pq "SELECT wal_records, wal_fpi, wal_bytes, wal_sync FROM pg_stat_wal" | awk -F'|' -v who="$1" -v n="$2" 'n > 0 {
      printf "1,postgres,%s,,wal_records_per_cycle,%.2f\n", who, $1 / n
      printf "1,postgres,%s,,wal_bytes_per_cycle,%.0f\n", who, $3 / n
      printf "1,postgres,%s,,wal_syncs_per_cycle,%.2f\n", who, $4 / n }' >>"$D"
  }
  pq "SELECT pg_stat_reset_shared('wal')" >/dev/null
  rm -f "$scratch/d.csv"
  "$B/bench_cycle" -u "$pg_url" -t 1.5 -o "$scratch/d.csv" -S postgres 2>/dev/null
  pg_wal ours "$(cycles_of "$scratch/d.csv")"
  pq "SELECT pg_stat_reset_shared('wal')" >/dev/null
  n=$("$pgbench" -n -c 1 -T 2 -f bench/pgbench_row.sql -h 127.0.0.1 -p "$pg_port" -U tasklock tasklock 2>/dev/null |
    awk '/number of transactions actually processed/ { split($0, a, ": "); split(a[2], b, "/"); print b[1] }')
  pg_wal floor-row-pgbench "${n:-0}"
fi
fi # diagnostics

# ---- 6. serve: the CPU of `tasklock serve` per refresh (bench/bench_serve.c) ----------------------
S="$RESULTS/serve.csv"
if want serve; then
log "6: tasklock serve: CPU per refresh, ${SERVE_LOCKS:-1000} locks, ${SERVE_CLIENTS:-50} event streams"
if has bench_serve && [ -x "$B/tasklock" ]; then
  run serve sqlite ours "$B/bench_serve" -b "$B/tasklock" -n "${SERVE_LOCKS:-1000}" \
    -c "${SERVE_CLIENTS:-50}" -i 1000 -t "${SERVE_SECONDS:-20}" -w 3 -o "$S" -r 1
else
  missing serve sqlite ours "bench_serve or tasklock not built"
fi
fi # serve

# ---- 7. claim-next: draining a queue ----------------------------------------------------------
# bench_claim: P worker processes (CLAIM_PROCS) drain CLAIM_TASKS tasks on one store, three ways
# in each repetition, their order rotating: `work`'s loop through the library (claim-next, then
# release-and-claim-next with done), the naive loop (acquire each key fail-fast in turn, look up
# its done marker, release with done), and the store's one-round-trip floor per task (PostgreSQL
# also a round trip that writes nothing, floor-rtt). Each run on fresh keys (SQLite: a fresh
# file). Then the same with CLAIM_TASKS_SHORT tasks: claim-next is given every candidate on each
# call, so its cost per task grows with the list.
Q="$RESULTS/claim.csv"
if want claim; then
log "7: claim-next ($CLAIM_REPS repetitions; P = $CLAIM_PROCS; $CLAIM_TASKS and $CLAIM_TASKS_SHORT tasks)"
# shellcheck disable=SC2317 # called through rotate_run's eval
claim_one() { # REP STORE URL P M MODE
  local rep=$1 st=$2 url=$3 p=$4 n=$5 mode=$6
  [ "$st" = sqlite ] && url="sqlite:$scratch/claim-$rep-p$p-m$n-$mode.db"
  run claim "$st" "$mode" "$B/bench_claim" -u "$url" -p "$p" -M "$n" -m "$mode" -o "$Q" -r "$rep" -S "$st"
  [ "$st" = sqlite ] && rm -f "$scratch/claim-$rep-p$p-m$n-$mode.db"*
  return 0
}
claim_store() { # REP STORE URL MODES...
  local rep=$1 st=$2 url=$3 p n m cmds
  shift 3
  for n in $CLAIM_TASKS $CLAIM_TASKS_SHORT; do
    for p in $CLAIM_PROCS; do
      cmds=()
      for m in "$@"; do cmds+=("claim_one $rep $st \"\$url\" $p $n $m"); done
      rotate_run "$rep" "${cmds[@]}"
    done
  done
}
if has bench_claim; then
  for rep in $(seq 1 "$CLAIM_REPS"); do
    log "claim: repetition $rep of $CLAIM_REPS"
    claim_store "$rep" sqlite sqlite next naive floor
    if [ -n "$redis_url" ] && in_build redis; then
      claim_store "$rep" redis "$redis_url" next naive floor
    else
      missing claim redis all "$(why_not redis "$redis_url" "Redis server")"
    fi
    if [ -n "$pg_url" ] && in_build postgres; then
      claim_store "$rep" postgres "$pg_url" next naive floor floor-rtt
    else
      missing claim postgres all "$(why_not postgres "$pg_url" "PostgreSQL server")"
    fi
  done
  missing claim etcd all "not measured yet (bench_claim has no etcd floor)"
else
  missing claim all all "bench_claim not built"
fi
fi # claim

# ---- 8. GitHub sessions: the writes of holding locks --------------------------------------------
# bench_github -m sessions: M managers (SESS_MANAGERS; threads of one process) hold N locks
# (SESS_LOCKS; issues 1..N, the missing ones created) with a lock timeout of SESS_TIMEOUT_MS,
# with sessions and with per-claim heartbeats (their order rotating between repetitions); the
# test server's writes over SESS_INTERVALS heartbeat intervals. About a minute in all.
# shellcheck disable=SC2034 # used in rotate_run's eval strings
X="$RESULTS/sessions.csv"
if want sessions; then
log "8: GitHub sessions: writes of holding $SESS_LOCKS locks in $SESS_MANAGERS managers ($SESS_REPS repetitions)"
if [ -n "$gh_api" ] && in_build github && has bench_github; then
  for rep in $(seq 1 "$SESS_REPS"); do
    for sn in $SESS_LOCKS; do
      for sm in $SESS_MANAGERS; do # (not n, m: rotate_run has a local n)
        [ "$sm" -le "$sn" ] || continue
        rotate_run "$rep" \
          'run sessions github "n$sn-m$sm-sessions" "$B/bench_github" -a "$gh_api" -m sessions -N "$sn" -M "$sm" -T "$SESS_TIMEOUT_MS" -K "$SESS_INTERVALS" -s on -o "$X" -r "$rep"' \
          'run sessions github "n$sn-m$sm-per-claim" "$B/bench_github" -a "$gh_api" -m sessions -N "$sn" -M "$sm" -T "$SESS_TIMEOUT_MS" -K "$SESS_INTERVALS" -s off -o "$X" -r "$rep"'
      done
    done
  done
else
  missing sessions github all "$(why_not github "$gh_api" "GitHub test server")"
fi
fi # sessions

# ---- 9. Shared locks and deadlock checks --------------------------------------------------------
# bench_modes (threads of one process, each with its own manager and store connection):
# MODES_READERS readers acquire and release one key shared in a loop for MODES_SECONDS, against
# as many exclusive lockers waiting in the key's line for each other, and one reader alone; the
# three in each repetition, their order rotating (SQLite: a fresh file each). Then, on each
# store with the wait-for graph, one deadlock check (the store's waiters read, and the holders
# of a cycle's keys) with W waiters planted (MODES_WAITERS), without and with a cycle, against
# the busy claim a waiter makes anyway: MODES_CHECKS of each, timed one by one, the checker's
# store calls counted (and the server's requests where it counts them). About 1-2 minutes.
M="$RESULTS/modes.csv"
if want modes; then
log "9: shared locks ($MODES_REPS repetitions of ${MODES_SECONDS} s; $MODES_READERS readers) and deadlock checks (W = $MODES_WAITERS)"
# shellcheck disable=SC2317 # called through rotate_run's eval
modes_one() { # REP STORE URL MODE THREADS
  local rep=$1 st=$2 url=$3 mode=$4 p=$5
  [ "$st" = sqlite ] && url="sqlite:$scratch/modes-$rep-$mode-$p.db"
  run modes "$st" readers "$B/bench_modes" -u "$url" -m "$mode" -p "$p" -t "$MODES_SECONDS" \
    -o "$M" -r "$rep" -S "$st"
  [ "$st" = sqlite ] && rm -f "$scratch/modes-$rep-$mode-$p.db"*
  return 0
}
modes_checks() { # STORE URL
  local st=$1 url=$2 w n=$MODES_CHECKS
  [ "$st" = memory ] && n=$((MODES_CHECKS * 10))
  local keys=()
  [ "$st" = github ] && keys=(-N 1) # issues 1-12: the harness's server has 1-100
  for w in $MODES_WAITERS; do
    [ "$st" = sqlite ] && url="sqlite:$scratch/modes-deadlock-$w.db"
    [ "$st" = github ] && gh_reset
    run modes "$st" deadlock-check "$B/bench_modes" -u "$url" -m deadlock -W "$w" -n "$n" \
      "${keys[@]}" -o "$M" -r 1 -S "$st"
    [ "$st" = sqlite ] && rm -f "$scratch/modes-deadlock-$w.db"*
    grep -q "^modes,$st,deadlock-check,.*has no" "$RESULTS/not_measured.csv" 2>/dev/null && break
  done
  return 0
}
if has bench_modes; then
  modes_stores=(memory sqlite)
  declare -A modes_url=([memory]="memory:bench-modes" [sqlite]="sqlite:")
  if [ -n "$redis_url" ] && in_build redis; then
    modes_stores+=(redis)
    modes_url[redis]=$redis_url
  else
    missing modes redis all "$(why_not redis "$redis_url" "Redis server")"
  fi
  if [ -n "$pg_url" ] && in_build postgres; then
    modes_stores+=(postgres)
    modes_url[postgres]=$pg_url
  else
    missing modes postgres all "$(why_not postgres "$pg_url" "PostgreSQL server")"
  fi
  if [ -n "$etcd_ep" ] && in_build etcd; then
    modes_stores+=(etcd)
    modes_url[etcd]="etcd://$etcd_ep"
  else
    missing modes etcd all "$(why_not etcd "$etcd_ep" "etcd")"
  fi
  for rep in $(seq 1 "$MODES_REPS"); do
    log "modes: repetition $rep of $MODES_REPS"
    for st in "${modes_stores[@]}"; do
      grep -q "^modes,$st,readers,.*has no shared holders" "$RESULTS/not_measured.csv" 2>/dev/null && continue
      # shellcheck disable=SC2034 # used in rotate_run's eval strings
      u=${modes_url[$st]}
      # shellcheck disable=SC2016 # expanded by rotate_run's eval
      rotate_run "$rep" \
        'modes_one $rep $st "$u" shared $MODES_READERS' \
        'modes_one $rep $st "$u" exclusive $MODES_READERS' \
        'modes_one $rep $st "$u" shared 1'
    done
  done
  for st in "${modes_stores[@]}"; do modes_checks "$st" "${modes_url[$st]}"; done
  # GitHub: its waiters poll every second (section 3 needs 10 s runs for that reason), so
  # exclusive lockers on one key measure the poll, and a readers' run worth the name costs more
  # than this section's budget; its deadlock check would list every open issue's comments.
  missing modes github readers "a waiter polls every 1 s (no wake-ups), so 8 exclusive lockers on one key measure the poll interval; runs of 10 s or more per configuration (section 3) exceed this section's budget"
  if [ -n "$gh_api" ] && in_build github; then
    modes_checks github "$gh_url"
  else
    missing modes github deadlock-check "$(why_not github "$gh_api" "GitHub test server")"
  fi
else
  missing modes all all "bench_modes not built"
fi
fi # modes

echo "pressure_end: $(pressure)" >>"$ENVFILE"
log "measurements done"
exit 0

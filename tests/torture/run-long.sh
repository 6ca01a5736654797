#!/usr/bin/env bash
# run-long.sh [BUILD_DIR] -- the long torture runs (`make torture`): every scenario on every
# store this build has, with thousands of cycles and many faults, then a summary table.
#
# BUILD_DIR (default: build) is configured and tl-torture built in it if needed. Private Redis
# and PostgreSQL servers and a three-member etcd cluster are started for the run
# (tests/torture/servers.sh); the GitHub runs
# spawn their own tl-github-server. Each run's JSON summary goes to
# BUILD_DIR/torture-long/results.jsonl, its output to BUILD_DIR/torture-long/NAME.log, and the
# table to BUILD_DIR/torture-long/summary.md (and stdout). Exits 1 if any proof failed.
# `run-long.sh --summarize [BUILD_DIR]` prints the table of the last run again.
#
# Environment: TL_TORTURE_SCALE multiplies cycles and faults (e.g. 0.1 for a quick look);
# TL_TORTURE_STORES limits the stores (e.g. "sqlite redis"); TL_TORTURE_SEED fixes the seeds.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
summarize_only=""
if [ "${1:-}" = --summarize ]; then # print the table of an earlier run again
  summarize_only=1
  shift
fi
build=${1:-build}
case "$build" in /*) ;; *) build=$src/$build ;; esac
out=$build/torture-long
stores=${TL_TORTURE_STORES:-sqlite memory redis postgres etcd github}

results=$out/results.jsonl
if [ -z "$summarize_only" ]; then

if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$src" -B "$build"
fi
cmake --build "$build" --target tl-torture -j "$(nproc 2>/dev/null || echo 2)"
bin=$build/tl-torture
[ -x "$build/tl-github-server" ] && export TL_GITHUB_SERVER_BIN=$build/tl-github-server

rm -rf "$out"
mkdir -p "$out"
: >"$results"

servers=()
# shellcheck disable=SC2317 # called by the trap
cleanup() {
  for s in "${servers[@]}"; do
    "$here/servers.sh" stop "${s%%:*}" "${s#*:}" || true
    rm -rf "${s#*:}"
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

declare -A url restart fault
for store in $stores; do
  if ! "$bin" --has-store "$store"; then
    echo "run-long: this build has no $store store; skipping it" >&2
    continue
  fi
  case "$store" in
    sqlite) url[$store]=sqlite: ;;
    memory) url[$store]=memory: ;;
    github) url[$store]=github: ;;
    redis | postgres)
      dir=$(mktemp -d "${TMPDIR:-/tmp}/tl-torture-long-$store.XXXXXX")
      servers+=("$store:$dir")
      url[$store]=$("$here/servers.sh" start "$store" "$dir")
      restart[$store]="'$here/servers.sh' restart $store '$dir'"
      ;;
    etcd)
      dir=$(mktemp -d "${TMPDIR:-/tmp}/tl-torture-long-$store.XXXXXX")
      servers+=("$store:$dir")
      url[$store]=$("$here/servers.sh" start "$store" "$dir")
      fault[$store]="'$here/servers.sh' fault $store '$dir'"
      ;;
  esac
done

failed=0
start=$(date +%s)
run() { # STORE SCENARIO [tl-torture options]
  local store=$1 scenario=$2 name=$1-$2 rc=0 seed=()
  shift 2
  case " $* " in *" --modes "*) name+=-modes ;; esac
  [ -n "${url[$store]:-}" ] || return 0
  local extra=()
  [ "$scenario" = restart ] && extra+=(--restart-cmd "${restart[$store]}")
  [ "$scenario" = leader-kill ] && extra+=(--restart-cmd "${fault[$store]}")
  [ -n "${TL_TORTURE_SEED:-}" ] && seed=(--seed "$TL_TORTURE_SEED")
  echo "run-long: $name: tl-torture --store ${url[$store]} --scenario $scenario $*" >&2
  "$bin" --store "${url[$store]}" --scenario "$scenario" --report "$out/$name.json" \
    "${seed[@]}" "${extra[@]}" "$@" >"$out/$name.log" 2>&1 || rc=$?
  if [ "$rc" -eq 77 ]; then
    echo "run-long: $name: does not apply: $(tail -n 1 "$out/$name.log")" >&2
    return 0
  fi
  if [ -s "$out/$name.json" ]; then
    cat "$out/$name.json" >>"$results"
  else
    echo "{\"store\":\"$store\",\"scenario\":\"$scenario\",\"ok\":false,\"failures\":1}" >>"$results"
  fi
  if [ "$rc" -ne 0 ]; then
    failed=1
    echo "run-long: $name FAILED (exit $rc):" >&2
    grep 'FAILED' "$out/$name.log" | head -n 20 >&2 || tail -n 20 "$out/$name.log" >&2
  fi
}

# Machine-clock stores: contention, SIGKILL and SIGSTOP (restart and clock-skew do not apply).
run sqlite clean --workers 16 --cycles 1000 --keys 4
run memory clean --workers 16 --cycles 5000 --keys 4
run sqlite sigkill --workers 8 --cycles 600 --keys 3 --lock-timeout 1s --faults 30
run sqlite sigstop --workers 8 --cycles 600 --keys 3 --lock-timeout 1s --faults 20
run sqlite line --workers 8 --cycles 600 --keys 3 --lock-timeout 1s --faults 24
run memory line --workers 16 --cycles 2000 --keys 3 --lock-timeout 1s
# Readers, writers, semaphores, upgrades (--modes) under faults, and deadlocks made on purpose
# (docs/reliability.md, "Readers, writers, semaphores and deadlocks"); skipped (77) on a store
# that does not have them.
run memory clean --modes --workers 16 --cycles 2000 --keys 4 --lock-timeout 1s
run memory deadlock --workers 9 --cycles 100 --keys 4 --lock-timeout 1s
run sqlite sigkill --modes --workers 8 --cycles 600 --keys 3 --lock-timeout 1s --faults 30
run sqlite sigstop --modes --workers 8 --cycles 600 --keys 3 --lock-timeout 1s --faults 20
run sqlite deadlock --workers 9 --cycles 100 --keys 4 --lock-timeout 1s
# Server-clock stores: all of it.
for s in redis postgres; do
  run "$s" clean --workers 16 --cycles 1000 --keys 4
  run "$s" sigkill --workers 8 --cycles 1000 --keys 3 --lock-timeout 1s --faults 40
  run "$s" sigstop --workers 8 --cycles 1000 --keys 3 --lock-timeout 1s --faults 20
  run "$s" restart --workers 8 --cycles 1000 --keys 3 --lock-timeout 2s --faults 12 \
    --fault-interval 2s
  run "$s" clock-skew --workers 9 --cycles 300 --keys 3
  run "$s" partition --workers 8 --cycles 1000 --keys 4 --lock-timeout 4s --faults 10 \
    --fault-interval 2s
  run "$s" line --workers 8 --cycles 1000 --keys 3 --lock-timeout 1s --faults 24
  run "$s" sigkill --modes --workers 8 --cycles 1000 --keys 3 --lock-timeout 1s --faults 40
  run "$s" sigstop --modes --workers 8 --cycles 1000 --keys 3 --lock-timeout 1s --faults 20
  run "$s" deadlock --workers 9 --cycles 100 --keys 4 --lock-timeout 1s
done
# etcd: a three-member cluster; leader-kill kills and restarts its leader and stops a follower.
run etcd clean --workers 16 --cycles 300 --keys 4
run etcd sigkill --workers 8 --cycles 300 --keys 3 --lock-timeout 1s --faults 20
run etcd sigstop --workers 8 --cycles 300 --keys 3 --lock-timeout 1s --faults 12
run etcd line --workers 8 --cycles 300 --keys 3 --lock-timeout 1s --faults 16
run etcd sigkill --modes --workers 8 --cycles 300 --keys 3 --lock-timeout 1s --faults 20
run etcd sigstop --modes --workers 8 --cycles 300 --keys 3 --lock-timeout 1s --faults 12
run etcd deadlock --workers 9 --cycles 60 --keys 4 --lock-timeout 1s
run etcd leader-kill --workers 8 --cycles 1000 --keys 3 --lock-timeout 3s --faults 12 \
  --fault-interval 2s --stop 2s
# GitHub: slower (every acquire reads the issue's comment list, a page per 100 comments).
run github clean --workers 6 --cycles 100 --keys 4
run github sigkill --workers 6 --cycles 60 --keys 4 --lock-timeout 4s --faults 8
run github sigstop --workers 6 --cycles 60 --keys 3 --lock-timeout 4s --faults 6
run github github-faults --workers 6 --cycles 60 --keys 6 --faults 32 --fault-interval 1s
run github clock-skew --workers 6 --cycles 40 --keys 3 --hold 500ms
run github partition --workers 6 --cycles 60 --keys 3 --lock-timeout 4s --faults 6 \
  --fault-interval 2s
run github line --workers 6 --cycles 60 --keys 3 --lock-timeout 4s --faults 8 --hold 200ms
run github sigkill --modes --workers 6 --cycles 60 --keys 3 --lock-timeout 4s --faults 8
run github sigstop --modes --workers 6 --cycles 60 --keys 3 --lock-timeout 4s --faults 6
run github deadlock --workers 7 --cycles 20 --keys 3 --lock-timeout 4s

echo $(($(date +%s) - start)) >"$out/elapsed"
fi # summarize_only
elapsed=$(cat "$out/elapsed" 2>/dev/null || echo "?")
failed=0
grep -q '"ok":false' "$results" && failed=1

# The table.
field() { # JSON-LINE NAME: the first number (or word) after "NAME":
  sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" <<<"$1" | head -n 1 | tr -d '"'
}
faults() {
  sed -n 's/.*"faults":{"wanted":\([0-9]*\),"injected":\([0-9]*\),"bit":\([0-9]*\).*/\2 (\3 bit)/p' <<<"$1"
}
errors() {
  local e=() v lw
  v=$(sed -n 's/.*"errors":{"acquire":{\([^}]*\)}.*/\1/p' <<<"$1" | tr -d '"')
  [ -n "$v" ] && e+=("acquire $v")
  v=$(sed -n 's/.*"release":{\([^}]*\)}.*/\1/p' <<<"$1" | tr -d '"')
  [ -n "$v" ] && e+=("release $v")
  v=$(field "$1" heartbeats_failed)
  [ "${v:-0}" != 0 ] && e+=("heartbeats failed $v")
  lw=$(sed -n 's/.*"logged":{"warnings":\([0-9]*\),"errors":\([0-9]*\)}.*/\1 \2/p' <<<"$1")
  [ -n "$lw" ] && [ "$lw" != "0 0" ] && e+=("logged ${lw% *} warnings, ${lw#* } errors")
  [ ${#e[@]} -eq 0 ] && e=(none)
  local IFS=';' all
  all="${e[*]}"
  echo "${all//;/; }"
}
notes() { # the scenario's own figures
  local n=() v
  v=$(sed -n 's/.*"learned_by_heartbeat":\([0-9]*\).*/\1/p' <<<"$1")
  [ -n "$v" ] && n+=("lost locks learned by heartbeat: $v")
  v=$(sed -n 's/.*"leader_kill":{"kills":\([0-9]*\),"stops":\([0-9]*\).*"resume_all_max_ms":\([0-9-]*\),"stop_resume_all_max_ms":\([0-9-]*\).*/\1 \2 \3 \4/p' <<<"$1")
  if [ -n "$v" ]; then
    local a med
    read -r -a a <<<"$v"
    med=$(sed -n 's/.*"leader_kill":{[^}]*"resume_all_ms":\[\([0-9,-]*\)\].*/\1/p' <<<"$1" |
      tr ',' '\n' | sort -n | awk '{v[NR]=$1} END {if (NR) print v[int((NR+1)/2)]}')
    n+=("leaders killed: ${a[0]}, every worker acquiring again within ${a[2]} ms (median ${med:-?} ms), followers stopped: ${a[1]}, within ${a[3]} ms")
  fi
  v=$(field "$1" max_recovery_ms)
  [ -n "$v" ] && n+=("longest recovery: $v ms")
  v=$(field "$1" steal_attempts_refused)
  [ -n "$v" ] && n+=("skewed steal attempts refused: $v")
  v=$(field "$1" orphan_steals)
  [ "${v:-0}" != 0 ] && n+=("orphan claims recovered: $v")
  v=$(field "$1" lost_but_released)
  [ "${v:-0}" != 0 ] && n+=("told lost after releasing: $v")
  v=$(sed -n 's/.*"line":{[^}]*"pairs_checked":\([0-9]*\).*/\1/p' <<<"$1")
  if [ -n "$v" ]; then
    local ov q g lp lf
    ov=$(sed -n 's/.*"line":{[^}]*"order_violations":\([0-9]*\).*/\1/p' <<<"$1")
    q=$(sed -n 's/.*"line":{[^}]*"queued":\([0-9]*\).*/\1/p' <<<"$1")
    g=$(sed -n 's/.*"line":{[^}]*"gave_up":\([0-9]*\).*/\1/p' <<<"$1")
    lp=$(sed -n 's/.*"line":{[^}]*"lapsed":\([0-9]*\).*/\1/p' <<<"$1")
    lf=$(sed -n 's/.*"line":{[^}]*"leave_failed":\([0-9]*\).*/\1/p' <<<"$1")
    n+=("line: $q queued, $g gave up, $v grant pairs checked, $ov order violations, $lp lapsed, $lf leaves failed")
  fi
  v=$(sed -n 's/.*"partition":{[^}]*"holders":\([0-9]*\).*/\1/p' <<<"$1")
  if [ -n "$v" ]; then
    local lo med
    lo=$(sed -n 's/.*"partition":{[^}]*"margin_min_ms":\([0-9.-]*\).*/\1/p' <<<"$1")
    med=$(sed -n 's/.*"partition":{[^}]*"margin_median_ms":\([0-9.-]*\).*/\1/p' <<<"$1")
    n+=("partitioned holders: $v (gone before the next holder by $lo ms at least, $med ms median)")
  fi
  v=$(sed -n 's/.*"modes":{[^}]*"semaphore_overflows":\([0-9]*\).*/\1/p' <<<"$1")
  if [ -n "$v" ] && ! grep -q '"deadlock":{' <<<"$1"; then
    local sh sl ex so ut ug ud
    sh=$(sed -n 's/.*"modes":{[^}]*"shared":\([0-9]*\).*/\1/p' <<<"$1")
    sl=$(sed -n 's/.*"modes":{[^}]*"slot_holds":\([0-9]*\).*/\1/p' <<<"$1")
    ex=$(sed -n 's/.*"modes":{[^}]*"exclusive":\([0-9]*\).*/\1/p' <<<"$1")
    so=$(sed -n 's/.*"modes":{[^}]*"shared_overlaps":\([0-9]*\).*/\1/p' <<<"$1")
    ut=$(sed -n 's/.*"upgrades":{"tried":\([0-9]*\).*/\1/p' <<<"$1")
    ug=$(sed -n 's/.*"upgrades":{[^}]*"granted":\([0-9]*\).*/\1/p' <<<"$1")
    ud=$(sed -n 's/.*"upgrades":{[^}]*"deadlocks":\([0-9]*\).*/\1/p' <<<"$1")
    n+=("modes: $sh shared, $sl slots, $ex exclusive, $so shared overlaps, $v semaphore overflows, upgrades $ut tried, $ug granted, $ud deadlocks")
  fi
  v=$(sed -n 's/.*"deadlock":{[^}]*"created":\([0-9]*\).*/\1/p' <<<"$1")
  if [ -n "$v" ]; then
    local rp ms lt fr md
    rp=$(sed -n 's/.*"deadlock":{[^}]*"reported":\([0-9]*\).*/\1/p' <<<"$1")
    ms=$(sed -n 's/.*"deadlock":{[^}]*"missed":\([0-9]*\).*/\1/p' <<<"$1")
    lt=$(sed -n 's/.*"deadlock":{[^}]*"late":\([0-9]*\).*/\1/p' <<<"$1")
    fr=$(sed -n 's/.*"deadlock":{[^}]*"false_reports":\([0-9]*\).*/\1/p' <<<"$1")
    md=$(sed -n 's/.*"deadlock":{[^}]*"max_detect_ms":\([0-9.]*\).*/\1/p' <<<"$1")
    n+=("cycles: $v created, $rp reported, $ms missed, $lt late (slowest $md ms), false reports: $fr")
  fi
  local IFS=';' all
  all="${n[*]}"
  echo "${all//;/; }"
}
{
  echo "| store | scenario | workers | cycles | sections | faults injected | overlaps | token regressions | stale writes rejected | steals | errors reported | notes | result |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  tc=0 tf=0 to=0 tr=0 ts=0
  while IFS= read -r line; do
    ok=$(field "$line" ok)
    c=$(field "$line" cycles)
    f=$(sed -n 's/.*"injected":\([0-9]*\).*/\1/p' <<<"$line")
    o=$(field "$line" overlaps)
    r=$(field "$line" token_regressions)
    s=$(field "$line" stale_writes_rejected)
    tc=$((tc + ${c:-0})) tf=$((tf + ${f:-0})) to=$((to + ${o:-0})) tr=$((tr + ${r:-0}))
    ts=$((ts + ${s:-0}))
    echo "| $(field "$line" store) | $(field "$line" scenario) | $(field "$line" workers) | ${c:-?} |" \
      "$(field "$line" sections) | $(faults "$line") | ${o:-?} | ${r:-?} | ${s:-?} |" \
      "$(field "$line" steals) | $(errors "$line") | $(notes "$line") |" \
      "$([ "$ok" = true ] && echo pass || echo FAIL) |"
  done <"$results"
  echo
  echo "Total: $tc cycles, $tf faults injected, $to overlaps, $tr token regressions," \
    "$ts stale writes rejected; $elapsed s."
} | tee "$out/summary.md"

exit "$failed"

#!/usr/bin/env bash
# etcd-cluster.sh ACTION DIR [MEMBER] -- a throwaway three-member etcd cluster on loopback, for
# the failover tests (tests/integration/test_etcd_failover.c, the torture's etcd scenarios).
#
#   start DIR              start members m1, m2, m3 in DIR (created); print etcd://A,B,C
#   stop DIR               stop every member (SIGCONT, SIGTERM, then SIGKILL after a bound)
#   url DIR                print etcd://A,B,C again
#   leader DIR             print the leader's name (m1..m3), as the running members see it
#   wait-leader DIR        wait (bounded) until every running member answers and agrees on a leader
#   kill-leader DIR        SIGKILL the leader; print its name
#   kill-member DIR M      SIGKILL member M
#   restart-member DIR M   start member M again on its data (--initial-cluster-state existing),
#                          wait until it answers and the cluster has a leader
#   stop-member DIR [M]    SIGSTOP member M (default: a follower, picked at random); print it
#   cont-member DIR M      SIGCONT member M
#   pid DIR M              print member M's PID
#
# Each member listens on 127.0.0.1 only, a client port and a peer port (the one after it), both
# below the kernel's ephemeral range (ports.sh), kept in DIR/mN/port so that a restart keeps
# them. Data in DIR/mN/data, log in DIR/mN/log, PID in DIR/mN/pid; processes are signalled by
# PID only. Elections are fast (heartbeat 10 ms, election 100 ms: ETCD-API.md A.9), a bit slower
# with TL_ETCD_CLUSTER_SLOW=1 (25/250 ms) for very busy machines. Every wait has a bound; a
# member still running 10 s after SIGTERM (the last one can take that long) is SIGKILLed.
set -euo pipefail

action=${1:?usage: etcd-cluster.sh start|stop|url|leader|wait-leader|kill-leader|kill-member|restart-member|stop-member|cont-member|pid DIR [MEMBER]}
dir=${2:?usage: etcd-cluster.sh ACTION DIR [MEMBER]}
member=${3:-}
members=(m1 m2 m3)

# shellcheck source=tests/harness/ports.sh
. "$(dirname "$0")/ports.sh"

if ! command -v etcd >/dev/null 2>&1; then
  echo "etcd-cluster: etcd not found (scripts/install-deps installs etcd-server)" >&2
  exit 1
fi

heartbeat=10 election=100
if [ "${TL_ETCD_CLUSTER_SLOW:-0}" = 1 ]; then
  heartbeat=25 election=250
fi

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

now_ms() { echo $(($(date +%s%N) / 1000000)); }

alive() { # PID: running (a zombie has exited)
  kill -0 "$1" 2>/dev/null || return 1
  [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

pid_of() { # MEMBER: its PID, if it runs
  local pid
  [ -f "$dir/$1/pid" ] || return 1
  pid=$(cat "$dir/$1/pid")
  alive "$pid" || return 1
  echo "$pid"
}

port_of() { cat "$dir/$1/port"; }

check_member() {
  case "$1" in
    m1 | m2 | m3) ;;
    *)
      echo "etcd-cluster: no member '$1' (m1, m2, m3)" >&2
      exit 2
      ;;
  esac
}

status() { # MEMBER: its /v3/maintenance/status answer, or nothing
  curl -sf -m 1 -X POST -d '{}' "http://127.0.0.1:$(port_of "$1")/v3/maintenance/status" \
    2>/dev/null || true
}

# The member's view, "MEMBER_ID LEADER_ID" (decimal strings), or nothing (no answer, no leader).
view() {
  local s id lead
  s=$(status "$1")
  id=$(sed -n 's/.*"member_id":"\([0-9]*\)".*/\1/p' <<<"$s")
  lead=$(sed -n 's/.*"leader":"\([0-9]*\)".*/\1/p' <<<"$s")
  [ -n "$id" ] && [ -n "$lead" ] && [ "$lead" != 0 ] && echo "$id $lead"
}

# The leader's name as the running (not stopped) members agree on it, or fail.
leader_now() {
  local m v lead="" ids=() names=() agreed=0 running=0
  for m in "${members[@]}"; do
    local pid
    pid=$(pid_of "$m") || continue
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = T ] && continue # stopped
    running=$((running + 1))
    v=$(view "$m") || return 1
    ids+=("${v% *}")
    names+=("$m")
    if [ -z "$lead" ]; then
      lead=${v#* }
    elif [ "$lead" != "${v#* }" ]; then
      return 1
    fi
    agreed=$((agreed + 1))
  done
  [ "$running" -ge 2 ] && [ "$agreed" -eq "$running" ] || return 1
  for i in "${!ids[@]}"; do
    if [ "${ids[$i]}" = "$lead" ]; then
      echo "${names[$i]}"
      return 0
    fi
  done
  return 1
}

wait_leader() { # bounded: 20 s
  local l end=$(($(now_ms) + 20000))
  while [ "$(now_ms)" -lt "$end" ]; do
    if l=$(leader_now); then
      echo "$l"
      return 0
    fi
    sleep 0.05
  done
  echo "etcd-cluster: no leader after 20 s (logs in $dir/m*/log)" >&2
  return 1
}

url() {
  local m eps=""
  for m in "${members[@]}"; do
    eps="$eps${eps:+,}127.0.0.1:$(port_of "$m")"
  done
  echo "etcd://$eps"
}

spawn() { # MEMBER STATE: start it, in the background, with its PID in its pid file
  local m=$1 state=$2 cluster="" x
  for x in "${members[@]}"; do
    cluster="$cluster${cluster:+,}$x=http://127.0.0.1:$(($(port_of "$x") + 1))"
  done
  local c p
  c=$(port_of "$m")
  p=$((c + 1))
  # Output goes to the log, never to our stdout: callers read stdout until it closes.
  etcd --name "$m" --data-dir "$dir/$m/data" \
    --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
    --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
    --initial-cluster "$cluster" --initial-cluster-token "$(cat "$dir/token")" \
    --initial-cluster-state "$state" \
    --heartbeat-interval "$heartbeat" --election-timeout "$election" \
    </dev/null >>"$dir/$m/log" 2>&1 &
  echo $! >"$dir/$m/pid"
}

stop_pid() { # PID SIGNAL: signal it and wait, bounded (10 s), then SIGKILL it
  local pid=$1
  kill -CONT "$pid" 2>/dev/null || true
  kill "-$2" "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 200); do
    alive "$pid" || return 0
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 1 200); do
    alive "$pid" || return 0
    sleep 0.05
  done
  echo "etcd-cluster: process $pid did not stop" >&2
  return 1
}

stop_all() {
  local m pid pids=()
  for m in "${members[@]}"; do
    pid=$(pid_of "$m") && pids+=("$pid")
  done
  # SIGTERM to all at once: the members leave together instead of the last one waiting for
  # peers that are gone.
  for pid in "${pids[@]}"; do
    kill -CONT "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
  done
  local rc=0
  for pid in "${pids[@]}"; do
    stop_pid "$pid" TERM || rc=1
  done
  rm -f "$dir"/m?/pid
  return $rc
}

start() {
  for _ in $(seq 1 10); do
    local m ok=1
    rm -f "$dir"/m?/port
    for m in "${members[@]}"; do
      mkdir -p "$dir/$m"
      rm -rf "$dir/$m/data"
      local c
      c=$(tl_random_port) || { ok=0; break; }
      if tl_port_in_use $((c + 1)) || grep -qx "$c\|$((c + 1))\|$((c - 1))" "$dir"/m?/port 2>/dev/null; then
        ok=0
        break
      fi
      echo "$c" >"$dir/$m/port"
    done
    if [ "$ok" = 1 ]; then
      echo "tl-test-$$-$RANDOM" >"$dir/token" # one cluster token for all members
      for m in "${members[@]}"; do spawn "$m" new; done
      local end=$(($(now_ms) + 20000))
      while [ "$(now_ms)" -lt "$end" ]; do
        if leader_now >/dev/null; then
          url
          return 0
        fi
        for m in "${members[@]}"; do
          pid_of "$m" >/dev/null || ok=0 # lost a port to someone else: try others
        done
        [ "$ok" = 1 ] || break
        sleep 0.05
      done
      stop_all || true
    fi
    rm -f "$dir"/m?/port
  done
  echo "etcd-cluster: could not start a cluster (logs in $dir/m*/log)" >&2
  for m in "${members[@]}"; do
    [ -f "$dir/$m/log" ] && tail -n 5 "$dir/$m/log" >&2
  done
  return 1
}

case "$action" in
  start) start ;;
  stop) stop_all ;;
  url) url ;;
  leader) leader_now ;;
  wait-leader) wait_leader >/dev/null ;;
  kill-leader)
    l=$(wait_leader)
    pid=$(pid_of "$l")
    kill -KILL "$pid"
    stop_pid "$pid" KILL
    echo "$l"
    ;;
  kill-member)
    check_member "$member"
    pid=$(pid_of "$member") || exit 0
    stop_pid "$pid" KILL
    ;;
  restart-member)
    check_member "$member"
    if pid=$(pid_of "$member"); then
      echo "etcd-cluster: $member is running (pid $pid)" >&2
      exit 1
    fi
    started=0
    for _ in $(seq 1 5); do # its port may be taken for a moment by someone else's socket
      spawn "$member" existing
      pid=$(cat "$dir/$member/pid")
      end=$(($(now_ms) + 20000))
      while [ "$(now_ms)" -lt "$end" ]; do
        if ! alive "$pid"; then
          break
        fi
        if [ -n "$(view "$member")" ] && leader_now >/dev/null; then
          started=1
          break
        fi
        sleep 0.05
      done
      [ "$started" = 1 ] && break
      stop_pid "$pid" KILL || true
      sleep 0.2
    done
    if [ "$started" != 1 ]; then
      echo "etcd-cluster: $member did not come back (log: $dir/$member/log)" >&2
      tail -n 5 "$dir/$member/log" >&2
      exit 1
    fi
    ;;
  stop-member)
    if [ -z "$member" ]; then
      l=$(wait_leader)
      followers=()
      for m in "${members[@]}"; do
        [ "$m" != "$l" ] && pid_of "$m" >/dev/null && followers+=("$m")
      done
      [ ${#followers[@]} -gt 0 ] || { echo "etcd-cluster: no follower running" >&2; exit 1; }
      member=${followers[$((RANDOM % ${#followers[@]}))]}
    fi
    check_member "$member"
    pid=$(pid_of "$member")
    kill -STOP "$pid"
    echo "$member"
    ;;
  cont-member)
    check_member "$member"
    pid=$(pid_of "$member")
    kill -CONT "$pid"
    ;;
  pid)
    check_member "$member"
    pid_of "$member"
    ;;
  *)
    echo "etcd-cluster: unknown action $action" >&2
    exit 2
    ;;
esac

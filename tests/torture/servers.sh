#!/usr/bin/env bash
# servers.sh -- private Redis and PostgreSQL servers and etcd clusters for torture runs, which
# must be able to restart them (the shared servers of tests/harness/with-servers belong to every
# test).
#
#   servers.sh start   redis|postgres|etcd DIR   start one in DIR (created), print its store URL
#   servers.sh restart redis|postgres|etcd DIR   stop it and start it again on the same port and
#                                                data (etcd: the leader is SIGKILLed and restarted)
#   servers.sh stop    redis|postgres|etcd DIR   stop it
#   servers.sh fault   etcd DIR ACTION [MEMBER]  an action of tests/harness/etcd-cluster.sh on the
#                                                cluster (the leader-kill scenario's faults)
#
# etcd is a three-member cluster on loopback (tests/harness/etcd-cluster.sh, fast elections).
#
# Restarts alternate between a crash (Redis: SIGKILL; PostgreSQL: immediate shutdown, then
# crash recovery) and a clean shutdown (SIGTERM; PostgreSQL: fast shutdown), counted in
# DIR/restarts. Each waits, bounded, until the server answers again.
#
# Redis runs with every write on disk before it is acknowledged (appendonly yes, appendfsync
# always): a lock record must survive the restart, or a live lock would silently vanish (see
# docs/reliability.md); TL_TORTURE_REDIS_PERSIST=no starts it without persistence instead, to
# see what a restart then does. PostgreSQL is started by tests/harness/start-postgres, which keeps the
# port (DIR/port) and the cluster (DIR/data) of an earlier start, with fsync on.
set -euo pipefail

cmd=${1:?usage: servers.sh start|restart|stop|fault redis|postgres|etcd DIR}
kind=${2:?usage: servers.sh start|restart|stop|fault redis|postgres|etcd DIR}
dir=${3:?usage: servers.sh start|restart|stop|fault redis|postgres|etcd DIR}
here=$(cd "$(dirname "$0")" && pwd)
harness=$here/../harness

mkdir -p "$dir"
chmod 777 "$dir" # PostgreSQL runs as the postgres user when we are root
dir=$(cd "$dir" && pwd)

# shellcheck source=tests/harness/ports.sh
. "$harness/ports.sh"

alive() { # PID: running (a zombie, not yet reaped by whoever adopted it, has exited)
  kill -0 "$1" 2>/dev/null || return 1
  [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

wait_gone() { # PID: bounded wait until the process has exited
  for _ in $(seq 1 600); do # 30 s
    alive "$1" || return 0
    sleep 0.05
  done
  echo "servers.sh: process $1 did not stop" >&2
  return 1
}

redis_ping() {
  [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]
}

redis_start() {
  local port pid
  for _ in $(seq 1 20); do
    if [ -f "$dir/port" ]; then
      port=$(cat "$dir/port")
    else
      port=$(tl_random_port) || break
    fi
    local persist=(--appendonly yes --appendfsync always)
    [ "${TL_TORTURE_REDIS_PERSIST:-yes}" = no ] && persist=(--appendonly no)
    redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save '' "${persist[@]}" \
      --daemonize no --logfile "$dir/redis.log" </dev/null >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 1 400); do # 20 s: replaying the append-only file takes a moment
      if redis_ping "$port"; then
        echo "$pid" >"$dir/pid"
        echo "$port" >"$dir/port"
        echo "redis://127.0.0.1:$port/0"
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if [ -f "$dir/port" ]; then # our port, taken meanwhile: wait for it, bounded
      sleep 0.2
    fi
  done
  echo "servers.sh: could not start redis-server (see $dir/redis.log)" >&2
  tail -n 20 "$dir/redis.log" >&2 2>/dev/null || true
  return 1
}

pg_start() {
  local line
  # start-postgres prints the URI; it reuses DIR/port and DIR/data when they exist.
  line=$("$harness/start-postgres" "$dir" | grep '^TL_TEST_POSTGRES_URI=') || return 1
  echo "${line#TL_TEST_POSTGRES_URI=}"
}

stop_server() { # SIGNAL
  [ -f "$dir/pid" ] || return 0
  local pid
  pid=$(cat "$dir/pid")
  kill "-$1" "$pid" 2>/dev/null || true
  wait_gone "$pid"
  rm -f "$dir/pid"
}

cluster=$harness/etcd-cluster.sh

case "$cmd/$kind" in
  start/etcd) "$cluster" start "$dir" ;;
  stop/etcd) "$cluster" stop "$dir" ;;
  restart/etcd)
    n=$(cat "$dir/restarts" 2>/dev/null || echo 0)
    echo $((n + 1)) >"$dir/restarts"
    m=$("$cluster" kill-leader "$dir")
    "$cluster" restart-member "$dir" "$m"
    ;;
  fault/etcd) "$cluster" "${4:?usage: servers.sh fault etcd DIR ACTION [MEMBER]}" "$dir" ${5:+"$5"} ;;
  start/redis) redis_start ;;
  start/postgres) pg_start ;;
  stop/redis) stop_server TERM ;;
  stop/postgres) stop_server INT ;;
  restart/redis | restart/postgres)
    n=$(cat "$dir/restarts" 2>/dev/null || echo 0)
    echo $((n + 1)) >"$dir/restarts"
    if [ $((n % 2)) -eq 0 ]; then # a crash
      if [ "$kind" = redis ]; then stop_server KILL; else stop_server QUIT; fi
    else # a clean shutdown
      if [ "$kind" = redis ]; then stop_server TERM; else stop_server INT; fi
    fi
    if [ "$kind" = redis ]; then redis_start >/dev/null; else pg_start >/dev/null; fi
    ;;
  *)
    echo "usage: servers.sh start|restart|stop|fault redis|postgres|etcd DIR" >&2
    exit 2
    ;;
esac

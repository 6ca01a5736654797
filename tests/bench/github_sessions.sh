#!/bin/sh
# github_sessions.sh BUILD_DIR -- bench_github -m sessions (bench/run.sh section 8) measures what
# it says: on a private GitHub test server, 2 managers holding 4 locks write about once per
# heartbeat interval each with sessions (2), and once per lock without (4); no lock is lost.
# The bounds are loose (a renewal late by a CI core's load moves a write across the window's
# edge); what they catch is a driver that counts the wrong thing or holds the wrong locks.
set -u
B=$1
[ -x "$B/bench_github" ] && [ -x "$B/tl-github-server" ] || { echo "skip: not built"; exit 77; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/tl-bench-gh.XXXXXX")
trap 'exec 3>&-; rm -rf "$dir"' EXIT
mkfifo "$dir/in"
# --die-with-stdin: the server ends when this script's end of the fifo closes.
"$B/tl-github-server" --port 0 --die-with-stdin <"$dir/in" >"$dir/server.log" 2>&1 &
exec 3>"$dir/in"
i=0
until grep -q '^listening on ' "$dir/server.log"; do
  i=$((i + 1))
  [ $i -le 200 ] || { echo "FAIL: the test server did not start"; cat "$dir/server.log"; exit 1; }
  sleep 0.05
done
api=$(sed -n 's/^listening on //p' "$dir/server.log" | head -n 1)
export GH_TOKEN=test-token
fail=0
for mode in on off; do
  if ! "$B/bench_github" -a "$api" -m sessions -N 4 -M 2 -T 2000 -K 4 -s "$mode" \
       -o "$dir/s.csv" -r 1 2>"$dir/err"; then
    echo "FAIL: -s $mode: $(cat "$dir/err")"
    exit 1
  fi
  cat "$dir/err"
done
# rows: rep,store,subject,config,metric,value
val() { awk -F, -v c="$1" -v m="$2" '$4 == c && $5 == m { print $6 }' "$dir/s.csv"; }
within() { # NAME VALUE LOW HIGH
  if awk -v v="$2" -v lo="$3" -v hi="$4" 'BEGIN { exit !(v != "" && v >= lo && v <= hi) }'; then
    echo "ok: $1 = $2 (in $3..$4)"
  else
    echo "FAIL: $1 = '$2', not in $3..$4"
    fail=1
  fi
}
within "sessions: writes per interval" "$(val n4-m2-sessions writes_per_interval)" 1.5 2.5
within "per-claim: writes per interval" "$(val n4-m2-per-claim writes_per_interval)" 3 5
within "sessions: writes per hour at 5 min" "$(val n4-m2-sessions writes_per_hour_default)" 72 120
within "sessions: locks lost" "$(val n4-m2-sessions locks_lost)" 0 0
within "per-claim: locks lost" "$(val n4-m2-per-claim locks_lost)" 0 0
within "sessions: renewals per lock per interval" \
  "$(val n4-m2-sessions renewals_per_lock_interval)" 0.75 1.25
[ $fail -eq 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $fail

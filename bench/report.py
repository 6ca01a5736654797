#!/usr/bin/python3
"""report.py RESULTS_DIR OUT_MD -- renders docs/performance.md from the raw figures of one run.

Reads RESULTS_DIR/{cycles,contention,heartbeat,github,diagnostics,claim,sessions,modes}.csv (rows of
rep,store,subject,config,metric,value; see bench/bench_common.h), not_measured.csv and
environment.txt (and environment-contention.txt, the record of a run of the contention
section alone: BENCH_ONLY=contention; environment-claim.txt, environment-sessions.txt, environment-github-sessions-modes.txt and
environment-modes.txt likewise), all written by bench/run.sh, and writes the tables:
medians over the repetitions, their spread (min-max), ratios ours / anchor, ours / floor and
line / no line computed within each repetition (the two were measured side by side) and then
summarised the same way, and each target of issues 7 and 12 with a check mark or a cross and,
for a miss, by how much, why and what would close it. Standard library only.
"""
import csv
import os
import statistics
import sys
from collections import defaultdict

RESULTS, OUT = sys.argv[1], sys.argv[2]


# ---- loading ----------------------------------------------------------------------------------

def load(name):
    """{(store, subject, config, metric): {rep: value}}"""
    d = defaultdict(dict)
    path = os.path.join(RESULTS, name + ".csv")
    if not os.path.exists(path):
        return d
    with open(path) as f:
        for row in csv.DictReader(f):
            try:
                d[(row["store"], row["subject"], row["config"], row["metric"])][int(row["rep"])] = \
                    float(row["value"])
            except (ValueError, KeyError):
                continue
    return d


cycles = load("cycles")
contention = load("contention")
heartbeat = load("heartbeat")
github = load("github")
diag = load("diagnostics")
claim = load("claim")
sessions = load("sessions")
modes = load("modes")

env = {}
if os.path.exists(os.path.join(RESULTS, "environment.txt")):
    with open(os.path.join(RESULTS, "environment.txt")) as f:
        for line in f:
            if ": " in line:
                k, v = line.rstrip("\n").split(": ", 1)
                env[k] = v

# A run of some sections alone (BENCH_ONLY=contention, or several: BENCH_ONLY=github,sessions)
# keeps its own record, environment-SECTIONS.txt; the newest record of a run that measured a
# section says which run that section's figures come from (sections 3, 5, 7, 8 and 9).
def section_env(section):
    best = {}
    for name in sorted(os.listdir(RESULTS)):
        if not (name.startswith("environment-") and name.endswith(".txt")):
            continue
        if section not in name[len("environment-"):-len(".txt")].split("-"):
            continue
        rec = {}
        with open(os.path.join(RESULTS, name)) as f:
            for line in f:
                if ": " in line:
                    k, v = line.rstrip("\n").split(": ", 1)
                    rec[k] = v
        if not best or rec.get("date", "") > best.get("date", ""):
            best = rec
    return best


env_contention = section_env("contention")
env_claim = section_env("claim")
env_sessions = section_env("sessions")
env_modes = section_env("modes")
env_github = section_env("github")

not_measured = []
if os.path.exists(os.path.join(RESULTS, "not_measured.csv")):
    with open(os.path.join(RESULTS, "not_measured.csv")) as f:
        for line in f:
            parts = line.rstrip("\n").split(",", 3)
            if len(parts) == 4:
                not_measured.append(parts)


# ---- numbers ----------------------------------------------------------------------------------

def kcfg(store, subject, p, k):
    """The contention config of P processes on K keys: "pP-kK", or with "-csMS" when the run
    had a critical section of MS milliseconds."""
    base = "p%d-k%d" % (p, k)
    for (st, sub, config, metric) in contention:
        if st == store and sub == subject and (config == base or config.startswith(base + "-cs")):
            return config
    return base


def series(d, store, subject, metric, config=""):
    return d.get((store, subject, config, metric), {})


def med(s):
    v = list(s.values()) if isinstance(s, dict) else list(s)
    return statistics.median(v) if v else None


def spread(s):
    v = list(s.values()) if isinstance(s, dict) else list(s)
    return (min(v), max(v)) if v else (None, None)


def ratio(a, b):
    """Per repetition a/b where both exist."""
    return {r: a[r] / b[r] for r in a if r in b and b[r]}


def fmt(x, digits=None):
    if x is None:
        return "–"
    if digits is None:
        ax = abs(x)
        digits = 0 if ax >= 100 else 1 if ax >= 10 else 2 if ax >= 1 else 3
    return "{:,.{d}f}".format(x, d=digits)


def fmt_ms(x):
    if x is None:
        return "–"
    return fmt(x, 0 if x >= 100 else 1 if x >= 10 else 2 if x >= 1 else 3)


def med_spread(s, digits=None, unit=""):
    if not s:
        return "not measured"
    lo, hi = spread(s)
    n = len(s)
    if n == 1:
        return "%s%s (1 run)" % (fmt(med(s), digits), unit)
    return "%s%s (%s–%s, n=%d)" % (fmt(med(s), digits), unit, fmt(lo, digits), fmt(hi, digits), n)


def ratio_text(s):
    if not s:
        return "–"
    lo, hi = spread(s)
    return "%s (%s–%s)" % (fmt(med(s), 2), fmt(lo, 2), fmt(hi, 2))


# ---- targets ----------------------------------------------------------------------------------

checks = []  # (id, what, measured text, target text, met: True/False/None, miss text)


def check(cid, what, value, target, op, measured_text, shown=None):
    """op: '>=' or '<=' or '>'. value None: not measured. shown: the target as the table says
    it (default: op and target)."""
    shown = shown or "%s %s" % ({">=": "≥", "<=": "≤"}.get(op, op), target)
    if value is None:
        checks.append((cid, what, "not measured", shown, None, ""))
        return
    if op == ">=":
        met = value >= target_value(target)
    elif op == ">":
        met = value > target_value(target)
    else:
        met = value <= target_value(target)
    miss = ""
    if not met:
        t = target_value(target)
        if op in (">=", ">"):
            miss = "%s short: %s is %.0f%% of the target %s" % (
                fmt(t - value, 2), fmt(value, 2), 100.0 * value / t if t else 0, fmt(t, 2))
        else:
            miss = "%s against a limit of %s: %.1f× over" % (
                fmt(value), fmt(t, 0 if t == int(t) else 2), value / t if t else 0)
    checks.append((cid, what, measured_text, shown, met, miss))


def target_value(t):
    return float(str(t).rstrip("×%"))


# Why a target is missed, and what would close it: the analysis of bench/run.sh's figures and
# diagnostics (section "Diagnostics" below), written for the mechanisms, shown only on a miss.
WHY = {
    "redis_floor": (
        "A tasklock cycle is two round trips, like the floor; what it adds is time inside Redis. "
        "Redis's own counters (section 6) put each EVALSHA of tasklock's claim and release "
        "scripts at tens of µs of server time, against a fraction of a µs for a PING, and most "
        "of it in the Lua code itself rather than in the Redis commands the scripts call. The "
        "same scripts sent by EVALSHA over a bare socket (the floor-eval row) run only a little "
        "faster than tasklock (that row's ratio), so most of the gap is in the scripts, not in "
        "the library or hiredis; turning the audit trail off (`?history_max=0`, no XADD: the "
        "variant row) recovers part of it. Where the Lua time goes (section 6, the second "
        "table, from `bench/redis_lua_cost.py`): any EVALSHA costs Redis a few µs before the "
        "script does anything (a `return 1`; more when it is given a claim's keys and "
        "arguments), and defining the prelude's helpers on every call 1 to 2 µs more, so "
        "running them once (Redis 7 functions: FUNCTION LOAD, then FCALL) "
        "would save little; reading and checking the record is the largest piece (HMGET of 8 "
        "fields, EXISTS when free, and the checks and number parsing of a held record), then "
        "TIME and the history XADD. Those pieces, timed warm in a loop inside one script, add "
        "up to about half of what the scripts cost when run once per request: the rest is the "
        "interpreter's fixed and cold-cache cost per call, which no rewrite of the scripts "
        "removes. To close it: less work per script (read only the fields a script needs; a "
        "claim on a free key needs no record checks), or a store without server-side scripts "
        "(which would give up staleness judged by the server's clock in the same atomic step). "
        "Over a real network the round trip grows and the same server time becomes a smaller "
        "share: the ratio rises by itself."),
    "redis_vs_redis_py": (
        "redis-py's `Lock` costs Redis a SET NX PX and a four-line release script (section 6: a "
        "few µs of server time a cycle), tasklock's scripts several times that; what tasklock "
        "saves on the client side (C against Python) it spends on the server. Lighter scripts, "
        "as for the floor above, would put it clearly ahead."),
    "redis_vs_redlock": (
        "redlock's lock and unlock scripts are shorter than tasklock's (no fencing-token counter, "
        "no history stream, no staleness judged by the server's clock); see the Redis floor."),
    "pg_floor": (
        "The bare row cycle inserts one row and deletes it. A tasklock cycle also appends two rows "
        "to tasklock_history (acquired, released), keeps the key's row with its last token "
        "instead of deleting it (so that a retried release can tell \"released by me\" from "
        "\"claimed since\"), takes a token from a sequence, and wraps each call in BEGIN, "
        "set_config() and COMMIT (one pipelined round trip). Section 6 counts the WAL of both: "
        "tasklock writes about twice the WAL records and several times the WAL bytes per cycle, "
        "and every commit waits for its WAL to reach the disk. To close it: make the audit trail "
        "optional or unlogged (`?history=off`), and write fewer index entries per cycle (the "
        "history table's index; an UPDATE of the key's row that stays a HOT update)."),
    "sqlite_floor": (
        "A tasklock cycle is two write transactions on a WAL file, as the floor's are, plus its "
        "history rows."),
    "cli_flock": (
        "flock(1) is a small binary linked with libc alone, and its lock lives in the kernel, "
        "with nothing written to disk. `tasklock run` must make the acquire and the release "
        "durable, on a file other processes share. `tasklock` no longer loads the network stores' "
        "client libraries (it hands those URLs to `tasklock-net`): it maps 6 shared objects where "
        "it mapped 38, which took its start from about 8 ms to under 2 ms. What remains, by "
        "strace: SQLite's open of a WAL database by the first connection (creating and syncing "
        "the WAL and its directory, building the shared-memory index), the two durable commits, "
        "the checkpoint and sync when the last connection closes (six fdatasync calls in all), "
        "a heartbeat thread, and the child's fork and exec that flock pays too. Keeping the WAL "
        "between runs and skipping the checkpoint on close was measured and dropped: every new "
        "process must then rebuild the WAL index by reading the whole WAL (651 reads a run), "
        "which costs more than the fsyncs it saves. To close the rest: a local agent that keeps "
        "the database open across runs, or fast fsyncs; the two durable commits remain a cost "
        "flock does not have."),
    "cli_etcd": (
        "etcdctl pays a gRPC connection and a Raft commit per lock and per unlock; tasklock pays "
        "its SQLite open and two durable commits (see the flock row). Closing the flock gap would "
        "close this one."),
    "gh_lat50": (
        "An acquire is 4 requests in sequence (list, POST claim, list, POST assignee)."),
    "gh_lat200": (
        "An acquire is 4 requests in sequence (list, POST claim, list, POST assignee)."),
}
STORE_NAME = {"sqlite": "SQLite", "redis": "Redis", "postgres": "PostgreSQL", "github": "GitHub",
              "etcd": "etcd"}

# Why the line misses a fairness or throughput target on a store: what the figures of the run
# say (why_line() puts them in), then the analysis, which was measured (gdb and strace of the
# workers, the hand-over times) rather than guessed; shown only on a miss.
WHY_LINE = {
    "sqlite": (
        "The line keeps its order (each worker gets 1/P of the critical sections, one wake-up "
        "per release): the head is woken by a datagram to a socket of its own (Linux's "
        "abstract namespace) and claims at once, and a claim waits for the write lock in short "
        "steps, so that a waiter gets into the line even while the holder releases and claims "
        "again within microseconds. Throughput: with the line every critical section costs "
        "three durable commits (the claim, the release, and the next waiter's join: one "
        "acquire queued per critical section, above) where the baseline mostly costs two (the "
        "releaser claims again at once); at the same commit rate the line's ceiling is about "
        "two thirds of the baseline, and it reaches about 0.6. Closing the rest needs a join "
        "without an fsync (the line is advice, not safety: waiter records in a file of their "
        "own with synchronous=OFF), which SQLite cannot choose inside a transaction: a claim "
        "would have to decide before BEGIN, and redo durably a join that turns out to be a "
        "win. Longest wait: as on Redis (see there), single stalled hand-overs while the "
        "workers wait for a CPU (above); a hand-over now takes under a millisecond, so a 10 ms "
        "stall is 10 to 25 cycle times, while the share of waits over the limit stays under "
        "1 % (without the line: 6 to 8 %). Before the datagram and the short busy steps "
        "(hand-overs polled every 2 to 50 ms, 15 to 17 ms at the median; a newcomer kept out "
        "of the line by SQLite's growing busy pauses) the line reached 0.05 to 0.11 of the "
        "baseline in the same benchmark (2026-12-04, source 9fa8894)."),
    "redis": (
        "The line keeps its order here (each worker gets 1/P of the critical sections, one "
        "wake-up per release); what breaks the wait limit is one stalled hand-over. A hand-over is three processes in turn (the releaser's script, "
        "Redis pushing to the head's list, the head returning from BLPOP and claiming), about "
        "0.3 ms at the median: less than one time slice of the scheduler. The workers spent the "
        "time above runnable but not running (`/proc/self/schedstat`), and each run's longest "
        "hand-over was tens of times its median (above): a woken head waiting for a CPU. In a line, "
        "everyone behind a stalled head waits for it, so the longest wait is one or two "
        "stalled hand-overs plus P − 1 ordinary ones, and at 0.3 ms a cycle a 10 ms stall is "
        "already 30 cycle times. It is not the line's order: with 2 processes (a line of one "
        "waiter) the longest wait was still 18–43 cycle times (6–21 ms, three runs of "
        "`bench_contend -p 2 -t 2` on 2026-12-04, the workers waiting for a CPU 0.22–0.31 s "
        "per second), and renicing Redis and the workers to −15 changed nothing (38–78 cycle "
        "times against 32–74 at nice 0, three runs each), so the CPU is taken by work outside "
        "this benchmark's processes. Without the line the tail is longer still (same table). Nothing in the line would close it: it needs workers that get a CPU "
        "when woken (idle cores). In the library, granting the lock to the head inside the "
        "release script (the head's BLPOP would return the grant: one round trip fewer per "
        "hand-over) would make hand-overs shorter but not the stalls, and so would raise this "
        "ratio rather than lower it. Throughput: the line's hand-over has one hop more than a "
        "race (the head must be woken before it claims; without the line the releaser often "
        "claims again itself, or a waiter that is already running wins), about 0.05 ms at the "
        "median at P = 4 (the hand-over table), worth up to a sixth of a 0.3 ms cycle; at P = 8 "
        "the line wins, as the racing waiters cost more. Within one run the ratio's spread "
        "(min–max) is far wider than its distance from 0.8, and other runs of the same command "
        "the same day gave medians of 1.12 and 0.95 at P = 4, so a miss at P = 4 is within the "
        "noise; the grant in the release script would remove that hop."),
    "postgres": (
        "The line keeps its order (shares exactly 1/P, one wake-up per release, more throughput "
        "than without it); the limit is broken, as on Redis (see there), by single stalled "
        "hand-overs: a hand-over is the releaser's commit, a NOTIFY to the head, the head's "
        "wake-up and its claim's commit, a few ms at the median, and each run's longest is "
        "several times that while the workers wait for a CPU (above). With cycles of 3 to 8 ms "
        "a stall costs fewer cycle times than on Redis, so PostgreSQL sits at the limit and "
        "the machine decides: of two earlier runs of the same command the same day, one met "
        "it in both configurations (03:37 UTC: 7.3 and 15.2 cycle times, medians of 5) and one "
        "missed it in both (03:47 UTC: 12.9 and 21.0). Nothing in the "
        "line would close it; idle cores would."),
    "etcd": (
        "A hand-over in line is a wake-up (the head's watch on the record sees the release), "
        "one read and one transaction (the head's claim compares that nothing joined the line "
        "since that read); the race without the line is a claim that happens to come right "
        "after the release. Each waiter's watch starts at the current revision and the waiter "
        "reads the key again once etcd confirms the watch: a watch that starts at a past "
        "revision is served by etcd 3.4 from its unsynced group, which it catches up only every "
        "100 ms (mvcc/watchable_store.go, syncWatchersLoop), and a first version of the store "
        "that did so measured 0.32 of the no-line throughput with a 100 ms hand-over p99. Each "
        "wait still opens a watch stream (a new request) per predecessor change."),
}


def why_line(store):
    facts = []
    for p in (4, 8):
        ho = fser(store, "ours", p, "handover_p50_ms")
        ho0 = fser(store, "ours-no-line", p, "handover_p50_ms")
        st = fser(store, "ours", p, "workers_starved")
        over = fser(store, "ours", p, "waits_over_2p_pct")
        if not ho:
            continue
        mx = fser(store, "ours", p, "handover_max_ms")
        rq = fser(store, "ours", p, "runq_wait_ms_per_s")
        lw = fser(store, "ours", p, "longest_wait_ms")
        facts.append("P = %d: a hand-over took %s ms at the median with the line (%s ms without "
                     "it), the longest of each run %s–%s ms, the longest wait %s–%s ms; the "
                     "workers waited for a CPU %s ms per second (median); %d of %d runs with "
                     "the line left a worker without a single critical section; %s %% of the "
                     "waits were over the limit" % (
                         p, fmt_ms(med(ho)), fmt_ms(med(ho0)) if ho0 else "–",
                         fmt_ms(spread(mx)[0]), fmt_ms(spread(mx)[1]),
                         fmt_ms(spread(lw)[0]), fmt_ms(spread(lw)[1]),
                         fmt(med(rq), 0) if rq else "–",
                         sum(1 for v in st.values() if v > 0), len(st),
                         fmt(med(over), 2) if over else "–"))
    return "In this run: %s. %s" % ("; ".join(facts), WHY_LINE.get(store, "Not analysed yet."))


# Claim-next's misses (section 7): the analysis of bench_claim's figures, profiled by hand (see
# the section); shown under the table.
WHY_CLAIM = (
    "The O(M) walk that missed these targets by 25 to 50 times in the first measurement "
    "(2026-12-04 15:14 UTC: every call was given all M candidates and the store walked the "
    "finished head of the list in each: 0.02 to 0.04 of the floor with 2,000 tasks, PostgreSQL "
    "with 8 workers failing on its statement timeout) is gone: the library now remembers its "
    "list and the candidates the store reported done, and sends windows of 32 candidates not "
    "known done (api.md, *Long lists*). One worker's time per task no longer grows with the "
    "list (the line under the table: 2,000 candidates cost what 200 do), and claim-next leads "
    "the naive loop by 3 to 8 times at 8 workers on every store. What is left of the gap to "
    "the floor is the work of the one round trip itself, not its size. The floor is the least "
    "a store can do per round trip (a bare SET; one single-row upsert); release-and-claim-next "
    "is a release, a done marker, the next claim's checks and writes and two audit events, "
    "atomically on the server. On Redis that is one script, and a script's server time is tens "
    "of µs (section 6: any EVALSHA costs a few µs before it starts, and tasklock's claim and "
    "release scripts about 20 µs each), against under 2 µs for the SET: over the loopback "
    "interface, where a round trip is about 25 µs, that alone caps the ratio near 0.35, and "
    "no client-side change can lift it. On PostgreSQL it is one PL/pgSQL call of about ten "
    "statements in one transaction (one commit, one fsync, as the floor), each statement "
    "with its executor start-up, against the floor's one prepared statement. Over a real "
    "network the round trip grows while the server's time stays: with a 0.5 ms round trip the "
    "same server time would put Redis at about 0.9 of its floor. The target as stated (0.9 of "
    "a bare round trip, on loopback) would need the store to do its work in about a tenth of "
    "a bare round trip, which a server-side atomic step of this size does not on either store.")


WHY_HB = (
    "The heartbeat renews each lock with its own round trip (one script call, or one "
    "transaction with a commit each); to close it, renew in batches (one call for all the "
    "locks due).")


# Section 9's reading of its figures (shared locks and deadlock checks): written for the
# mechanisms, from the run of 2026-12-04 (bench_modes; see the section).
WHY_MODES_READERS = (
    "%(P)d exclusive lockers on one key take turns through the line, and every turn is a "
    "hand-over (the holder's release, the head's wake-up, its claim) during which nobody holds "
    "the key; readers never wait for each other. What readers cannot share is the write each "
    "grant makes: every grant, shared or not, takes the key's next fencing token (so that a "
    "writer's token is larger than every reader's before it), and a reader's release rewrites "
    "the key's holders, so the acquisitions of one key are serialised by the store on that "
    "key's record whatever the mode. Hence *%(P)d readers ÷ 1 reader* stays near 1 (below it "
    "where the readers' writes collide) and *shared ÷ exclusive* measures what the hand-overs "
    "cost, store by store: the memory store's exclusive turn is a thread switch (a condition "
    "variable; about 50 µs against 2–5 µs for a shared acquire and release); SQLite's is a "
    "datagram to the head and its own commit after the releaser's, each a write transaction "
    "of the file's one writer; Redis's the releaser's script pushing to the head's list, the "
    "head's BLPOP returning and its claim script, in turn, through one server thread that "
    "shares the 2 cores with the 8 clients; PostgreSQL's a notification and the head's claim, each a "
    "commit.")
WHY_MODES_ETCD = (
    " On etcd readers only match exclusive lockers (%(r)s) and reach about half of one reader "
    "alone (%(r1)s): a key's shared holders are one value (the set, docs/etcd.md), and every "
    "reader's claim and release is a read and a transaction compared on that value's revision; "
    "with 8 readers rewriting it, many compares lose to another reader's write and start again, "
    "after a random pause of 1 to 2^attempt ms (until this stop's fix they retried at once, and a "
    "release gave up after 20 such losses in a row: readers then did worse than lockers, 0.76). "
    "Holders as keys of their own would let readers of one hot key scale there.")
WHY_MODES_CHECK = (
    "The deadlock check costs one read of every waiter in the store per check, and only a "
    "waiter that holds locks pays it, at each of its turns in line (its refreshes, a third of "
    "its waiter timeout apart, every few seconds by default, and its wake-ups), not in a loop. "
    "The read grows with the waiters listed (W): on the memory store it copies and parses every "
    "waiter's record (about a quarter of a µs each) against a busy claim that is one hash "
    "lookup; on a server it is one request whose reply (and on Redis the script's work, about "
    "one command per waiter) grows with W. With a waiter or two the check costs about as much as "
    "the busy claim a waiter makes anyway, or less (the memory store aside, where both take "
    "under a µs); %s. A cycle found "
    "by the lists adds one holders read per key on it (2 for a 2-cycle), which happens only "
    "when a deadlock is likely.")


def why_modes(P):
    text = WHY_MODES_READERS % {"P": P}
    r = ratio(mser("etcd", "shared", "p%d" % P, "acquires_per_s"),
              mser("etcd", "exclusive", "p%d" % P, "acquires_per_s"))
    r1 = ratio(mser("etcd", "shared", "p%d" % P, "acquires_per_s"),
               mser("etcd", "shared", "p1", "acquires_per_s"))
    if r and med(r) < 1.2:
        text += WHY_MODES_ETCD % {"r": "shared ÷ exclusive " + ratio_text(r),
                                  "r1": ratio_text(r1)}
    if modes_w:
        W = modes_w[-1]
        parts = []
        for st in MODES_STORES:
            r = ratio(mser(st, "check", "w%d" % W, "p50_ms"),
                      mser(st, "busy-claim", "w%d" % W, "p50_ms"))
            if r:
                parts.append("%s on %s" % (fmt(med(r), 1), st))
        at = ("with %d waiters, check ÷ busy claim is %s (the busy claim's time does not "
              "depend on W)" % (W, ", ".join(parts))
              if parts else "it grows with the waiters")
        text += "\n\n" + WHY_MODES_CHECK % at
    return text

# ---- sections ---------------------------------------------------------------------------------

out = []
w = out.append

w("# Performance")
w("")
w("Generated by `bench/report.py` from the raw figures of one run of `make bench` "
  "(`bench/run.sh`), which are in `bench/results/*.csv`. Do not edit by hand: run `make bench` "
  "again. Every figure below is the **median** of the repetitions, with the **spread** "
  "(minimum–maximum) and the number of repetitions; a ratio is computed within each repetition "
  "(ours and the anchor or floor measured side by side, in an order that rotates from one "
  "repetition to the next) and then summarised the same way. CPU pinning, if any, is in the "
  "table below.")
w("")

# The run
w("## The run")
w("")
w("| | |")
w("|---|---|")
for k, label in [("date", "date (UTC)"), ("command", "command"), ("settings", "settings"),
                 ("git", "source"), ("build", "build"), ("runtime_s", "runtime of the whole run"),
                 ("cpu", "CPU"), ("nproc", "cores (nproc)"), ("memory", "memory"),
                 ("kernel", "kernel"), ("virtualization", "virtualization"), ("os", "OS"),
                 ("disk_for_tmp", "file system of the SQLite files"),
                 ("pinning", "CPU pinning"),
                 ("load_average_start", "load average at the start (1, 5, 15 min)"),
                 ("load_average_end", "load average at the end"),
                 ("pressure_start", "time other work kept runnable tasks waiting (/proc/pressure, "
                  "\"some\", 60 s average) at the start"),
                 ("pressure_end", "the same at the end")]:
    if k in env:
        v = env[k]
        if k == "runtime_s":
            v = "%s s (%.1f min)" % (v, int(v) / 60.0)
        if k == "command":
            v = "`%s`" % v
        w("| %s | %s |" % (label, v))
w("")
w("Versions:")
w("")
w("| component | version |")
w("|---|---|")
for k in ["gcc", "sqlite", "redis-server", "hiredis", "postgres", "pgbench", "libpq", "libcurl",
          "python3", "python3-redis", "node", "redlock", "ioredis", "etcd3", "flock", "etcd"]:
    if k in env:
        w("| %s | %s |" % (k, env[k]))
w("")

# Collect the cycle figures
def cyc(store, subject, metric="cycles_per_s"):
    return series(cycles, store, subject, metric)


ours = {s: cyc(s, "ours") for s in ["sqlite", "redis", "postgres", "github", "memory", "etcd"]}
redis_floor = cyc("redis", "floor-redis-benchmark")
pg_floor = cyc("postgres", "floor-row-pgbench")
sqlite_floor = cyc("sqlite", "floor-2tx")
cli_ours = cyc("cli", "ours-run", "runs_per_s")
cli_flock = cyc("cli", "anchor-flock", "runs_per_s")
cli_etcd = cyc("cli", "anchor-etcdctl", "runs_per_s")
cli_ours_etcd = cyc("cli", "ours-run-etcd", "runs_per_s")
etcd_floor = cyc("etcd", "floor-txn")

r = ratio(ours["redis"], redis_floor)
check("redis_floor", "Redis: a cycle ≥ 90 % of its two-round-trip floor (`redis-benchmark -c 1` "
      "PING, 2 round trips)", med(r), "0.90", ">=", ratio_text(r))
r = ratio(ours["redis"], cyc("redis", "anchor-redis-py"))
check("redis_vs_redis_py", "Redis: ahead of redis-py's `Lock`", med(r), "1.0", ">", ratio_text(r))
r = ratio(ours["redis"], cyc("redis", "anchor-redlock"))
check("redis_vs_redlock", "Redis: ahead of `redlock` (ioredis)", med(r), "1.0", ">", ratio_text(r))
r = ratio(ours["postgres"], pg_floor)
check("pg_floor", "PostgreSQL: ≥ 90 % of the bare durable row cycle (pgbench)", med(r), "0.90", ">=",
      ratio_text(r))
r_store = ratio(ours["etcd"], cyc("etcd", "floor-store-txns"))
r_proto = ratio(cyc("etcd", "floor-store-txns"), etcd_floor)
r_v3 = ratio(ours["etcd"], cyc("etcd", "anchor-v3lock"))
if r_store and r_proto:
    WHY["etcd_floor"] = (
        "A tasklock cycle is the same two gateway requests as the floor (section 1); what it "
        "adds is work inside etcd, not in the library: tasklock's own claim and release "
        "transactions sent bare by the same libcurl + jansson loop (the floor-store-txns row) run "
        "at %s of the minimal floor, and tasklock runs at %s of them. The claim writes four keys "
        "where the floor writes one (the record, the owner key, the liveness key on the lease, "
        "an audit-trail event) behind two compares (one over the line's range), and the release "
        "deletes three, writes an event and counts the trail; every key written is a new "
        "revision kept until etcd compacts, and the events stay until the store trims them "
        "(history_max, default 1,000 a key). etcd's own lock service (`/v3/lock`: one key, "
        "put and delete) is ahead of tasklock here (%s). To close it: fewer keys per grant (the "
        "owner key and the record could be one key compared by value; the liveness key is what "
        "makes staleness etcd's judgement). The audit trail cannot be turned off on etcd "
        "(`history_max` is at least 1): a release retried after someone else claimed the key "
        "tells so from the trail." % (
            ratio_text(r_proto), ratio_text(r_store), ratio_text(r_v3) if r_v3 else "–"))
r = ratio(ours["etcd"], etcd_floor)
check("etcd_floor", "etcd: a cycle ≥ 90 % of the bare gateway floor (txn put-if-absent + txn "
      "delete by libcurl + jansson, same etcd)", med(r), "0.90", ">=", ratio_text(r))
r = ratio(ours["etcd"], cyc("etcd", "anchor-etcd3"))
check("etcd_vs_etcd3", "etcd: ahead of node's `etcd3` lock (gRPC)", med(r), "1.0", ">",
      ratio_text(r))
r = ratio(cli_ours_etcd, cli_etcd)
check("etcd_cli_vs_etcdctl", "etcd, CLI: `tasklock -s etcd://… run KEY -- true` ahead of "
      "`etcdctl lock L true`", med(r), "1.0", ">", ratio_text(r))
r = ratio(ours["sqlite"], sqlite_floor)
check("sqlite_floor", "SQLite: ≥ 50 % of two bare write transactions", med(r), "0.50", ">=",
      ratio_text(r))
r = ratio(cli_ours, cli_flock)
check("cli_flock", "CLI: `tasklock run KEY -- true` (SQLite) ≥ 75 % of `flock FILE true`", med(r),
      "0.75", ">=", ratio_text(r))
r = ratio(cli_ours, cli_etcd)
check("cli_etcd", "CLI: `tasklock run KEY -- true` ≥ 5× `etcdctl lock L true`", med(r), "5", ">=",
      ratio_text(r))

# Fairness (issue 12): on one key, the longest wait within 2 x P contended cycle times (a FIFO
# line of P workers makes the last one wait P - 1 critical sections; the factor 2 leaves room
# for the hand-over itself), the cycle time being the run's time over its critical sections,
# measured in the same run; and the line's throughput at least 0.8 x that of the same
# configuration run with the line off (no_line) in the same repetition.
LINE_STORES = ["sqlite", "redis", "postgres", "etcd"]


def fcfg(store, subject, p):
    return kcfg(store, subject, p, 1)


def fser(store, subject, p, metric):
    return series(contention, store, subject, metric, fcfg(store, subject, p))


def in_cycles(store, subject, p):
    """Longest wait in cycle times of the same run, per repetition."""
    v = fser(store, subject, p, "longest_wait_cycles")
    if v:
        return v
    cs = fser(store, subject, p, "cs_per_s")
    lw = fser(store, subject, p, "longest_wait_ms")
    return {k: lw[k] * cs[k] / 1000.0 for k in lw if k in cs and cs[k]}


for store in LINE_STORES:
    for p in (4, 8):
        v = in_cycles(store, "ours", p)
        lw = fser(store, "ours", p, "longest_wait_ms")
        base = in_cycles(store, "ours-no-line", p)
        check("fair_%s_p%d" % (store, p), "Fairness, %s, %d processes on 1 key: longest wait ≤ %d "
              "contended cycle times (with the line)" % (store, p, 2 * p), med(v) if v else None,
              str(2 * p), "<=",
              "%s ms = %s cycle times (%s–%s, n=%d); without the line %s" % (
                  fmt_ms(med(lw)), fmt(med(v), 1), fmt(spread(v)[0], 1), fmt(spread(v)[1], 1),
                  len(v), fmt(med(base), 0) if base else "–") if v else "")
for store in LINE_STORES:
    for p in (4, 8):
        r = ratio(fser(store, "ours", p, "cs_per_s"), fser(store, "ours-no-line", p, "cs_per_s"))
        check("thru_%s_p%d" % (store, p), "Line throughput, %s, %d processes on 1 key: ≥ 0.8 × "
              "the same run without the line (`no_line`)" % (store, p), med(r) if r else None,
              "0.80", ">=", ratio_text(r))

def hb_configs(store):
    return sorted({k[2] for k in heartbeat if k[0] == store and k[2].startswith("n")
                   and "-w" not in k[2]}, key=lambda c: int(c[1:]))


def hb_direct(store, cfg):
    """Whether that run renewed at the default interval itself (measured, not extrapolated)."""
    iv = med(series(heartbeat, store, "ours", "interval_ms", cfg))
    return iv is not None and iv == med(series(heartbeat, store, "ours", "default_interval_ms", cfg))


def hb_windows(store, cfg, metric):
    wins = sorted({k[2] for k in heartbeat if k[0] == store and k[2].startswith(cfg + "-w")})
    vals = [series(heartbeat, store, "ours", metric, c).get(1) for c in wins]
    return [x for x in vals if x is not None]


for store in ["sqlite", "redis", "postgres"]:
    direct = [c for c in hb_configs(store) if hb_direct(store, c) and c == "n1000"]
    if direct:
        v = hb_windows(store, direct[0], "core_pct_measured")
        how = "measured at the default interval"
    else:
        v = {}
        for (st, subject, config, metric), sv in heartbeat.items():
            if st == store and subject == "ours" and metric == "core_pct_at_default_per_1000":
                v = sv
        how = "extrapolated"
    check("hb_%s" % store, "Heartbeat, %s: 1,000 locks cost < 1 %% of a core at the default "
          "interval (30 s)" % store, med(v), "1%", "<=", "%s (%s)" % (med_spread(v, 3, " %"), how),
          shown="< 1 %")

# etcd (bench_etcd heartbeat): HB_LOCKS_ETCD locks with a short lock timeout; the CPU per
# renewal, at 1,000 renewals per default interval (30 s, the cap for the default 5 min timeout).
def etcd_hb_cfg():
    c = sorted({k[2] for k in heartbeat if k[0] == "etcd" and k[2].startswith("n")
                and "-w" not in k[2]})
    return c[0] if c else None


ehc = etcd_hb_cfg()
if ehc:
    n = int(ehc[1:].split("-")[0])
    v = {k: x * 1000.0 / n for k, x in series(heartbeat, "etcd", "ours",
                                                "core_pct_at_default_median", ehc).items()}
    win = hb_windows("etcd", ehc, "core_pct_at_default")
    check("hb_etcd", "Heartbeat, etcd: 1,000 locks cost < 1 % of a core at the default interval "
          "(30 s)", med(v), "1%", "<=", "%s (extrapolated from %s locks with a %s s lock timeout;"
          " windows %s)" % (fmt(med(v), 3) + " %", fmt(n, 0), ehc.split("-t")[1][:-3] or "?",
                            med_spread(win, 3, " %")), shown="< 1 %")
else:
    check("hb_etcd", "Heartbeat, etcd: 1,000 locks cost < 1 % of a core at the default interval "
          "(30 s)", None, "1%", "<=", "", shown="< 1 %")

# release: a list read first, to delete the dead waiters right after its claim (the line).
# busy_again: the comments and the holder's session (sessions are on by default), both
# conditional.
gh_budget = {"acquire": (4, 2), "heartbeat": (2, 1), "release": (4, 3), "busy_again": (2, 0)}
for op, (req, wr) in gh_budget.items():
    rq = series(github, "github", "ours", op + "_requests")
    wt = series(github, "github", "ours", op + "_writes")
    val = None if not rq else max(max(rq.values()) - req, max(wt.values()) - wr)
    check("gh_req_%s" % op, "GitHub: %s within its request budget" % (
        op.replace("busy_again", "an acquire that finds the issue held (repeated)")), val, "0",
        "<=", "%s requests, %s writes" % (fmt(med(rq), 0), fmt(med(wt), 0)) if rq else "",
        shown="≤ %d requests, %d writes" % (req, wr))
# Round trips of latency in an acquire: (its time with L ms added to every request - its time
# with none, measured the same way in the same repetition) / L, to the nearest whole round trip
# (the fraction left is the test server's sleep overshooting, a few tenths of a ms a request).
for lat in (50, 200):
    ms = series(github, "github", "ours", "acquire_ms", "latency%d" % lat)
    a0 = series(github, "github", "ours", "acquire_ms", "latency0")
    v = {k: (x - a0[k]) / lat for k, x in ms.items() if k in a0}
    check("gh_lat%d" % lat, "GitHub: acquire within 4 round trips of latency, %d ms added per "
          "request" % lat, round(med(v)) if v else None, "4", "<=",
          "%s ms; less %s ms without latency: %s round trips" % (
              fmt(med(ms), 0), fmt_ms(med(a0)), ratio_text(v)) if v else "",
          shown="≤ 4 round trips (to the nearest whole)")

# GitHub sessions (issue 18): 100 locks held by one manager at the default 5 min lock timeout
# within 10 % of the hourly content-write limit (500/h): at most 50 writes an hour, measured as
# the server's writes over K heartbeat intervals of a short timeout, times 48 intervals an hour.
GH_WRITE_LIMIT_H = 500


def sser(n, m, mode, metric):
    return series(sessions, "github", "ours", metric, "n%d-m%d-%s" % (n, m, mode))


v = sser(100, 1, "sessions", "writes_per_hour_default")
check("gh_sessions_100", "GitHub, sessions: 100 locks held by one manager cost ≤ 10 % of the "
      "hourly content-write limit (500/h) at the default 5 min lock timeout", med(v) if v else None,
      str(GH_WRITE_LIMIT_H // 10), "<=",
      "%s writes/h (measured over %s heartbeat intervals, × 48)" % (
          med_spread(v, 0), fmt(med(sser(100, 1, "sessions", "window_intervals")), 0)) if v else "",
      shown="≤ 50 writes/h")

# Claim-next (issue 14): P processes draining M tasks. Release-and-claim-next at >= 0.9 of the
# store's one-round-trip floor per task (Redis, PostgreSQL), and >= 3x the naive loop (acquire
# each key fail-fast in turn) at 8 workers; ratios within each repetition, on the long list.
CLAIM_STORES = ["sqlite", "redis", "postgres"]


def claim_cfgs():
    """[(P, M)] of the claim runs, M largest first."""
    c = {(int(k[2].split("-")[0][1:]), int(k[2].split("-")[1][1:])) for k in claim
         if k[2].startswith("p") and "-m" in k[2]}
    return sorted(c, key=lambda pm: (-pm[1], pm[0]))


def cser(store, subject, p, m, metric="tasks_per_s"):
    return series(claim, store, subject, metric, "p%d-m%d" % (p, m))


claim_pm = claim_cfgs()
claim_m = sorted({m for p, m in claim_pm}, reverse=True)
claim_long = claim_m[0] if claim_m else None
if claim_long is not None:
    for store in ["redis", "postgres"]:
        for p in sorted({p for p, m in claim_pm if m == claim_long}):
            r = ratio(cser(store, "ours-next", p, claim_long), cser(store, "floor", p, claim_long))
            check("claim_floor_%s_p%d" % (store, p), "Claim-next, %s, %d worker%s, %s tasks: "
                  "release-and-claim-next ≥ 0.9 × the store's one-round-trip floor per task" % (
                      store, p, "s" if p > 1 else "", fmt(claim_long, 0)),
                  med(r) if r else None, "0.90", ">=", ratio_text(r))
    for store in CLAIM_STORES:
        r = ratio(cser(store, "ours-next", 8, claim_long), cser(store, "naive", 8, claim_long))
        check("claim_naive_%s" % store, "Claim-next, %s, 8 workers, %s tasks: ≥ 3 × the naive "
              "loop (acquire each key fail-fast in turn)" % (store, fmt(claim_long, 0)),
              med(r) if r else None, "3", ">=", ratio_text(r), shown="≥ 3×")

w("## Targets")
w("")
w("| target | measured | target | met |")
w("|---|---|---|---|")
for cid, what, text, target, met, miss in checks:
    mark = "✓" if met else ("✗" if met is False else "not measured")
    w("| %s | %s | %s | %s |" % (what, text, target, mark))
w("")
misses = [c for c in checks if c[4] is False]
if misses:
    w("### Missed targets: by how much, why, and what would close it")
    w("")
    fair_notes = []
    for cid, what, text, target, met, miss in misses:
        if cid.startswith("fair_") or cid.startswith("thru_"):
            store = cid.split("_")[1]
            if store not in fair_notes:
                fair_notes.append(store)
            why = "Why: see *the line on %s* below." % STORE_NAME[store]
        elif cid.startswith("hb_"):
            why = WHY.get(cid, WHY_HB)
        elif cid.startswith("claim_"):
            why = "Why: see section 7 (*why the targets are missed*)."
        else:
            why = WHY.get(cid, "Not analysed yet.")
        w("- **%s** — %s. %s" % (what, miss, why))
    w("")
    for store in LINE_STORES:
        if store in fair_notes:
            w("*The line on %s.* %s" % (STORE_NAME[store], why_line(store)))
            w("")
    if fair_notes:
        w("The limit is 2 × P contended cycle times (a cycle time = the run's time ÷ its critical "
          "sections on the one key): a fair line of P workers makes the last one wait P − 1 of "
          "them. The figures of each repetition come from one run of each configuration with "
          "the line and one without it, taken one after the other (section 3).")
        w("")

# 1. Uncontended cycles
w("## 1. Uncontended acquire + release, one process, one key")
w("")
w("`bench_cycle`: `tl_acquire` (FAIL_FAST) + `tl_release` in a loop for %s s after a warm-up, "
  "through the library, one manager (its heartbeat thread idle). Floors and anchors on the same "
  "server in the same repetition. Ratio = ours ÷ that row, per repetition." %
  env.get("settings", "").split("SECONDS_PER=")[-1].split()[0] if "SECONDS_PER=" in
  env.get("settings", "") else "a few")
w("")
subjects = [
    ("sqlite", "ours", "tasklock (sqlite)"),
    ("sqlite", "floor-2tx", "floor: 2 bare write transactions (BEGIN IMMEDIATE; upsert; COMMIT), WAL, synchronous=FULL"),
    ("redis", "ours", "tasklock (redis)"),
    ("redis", "ours-history-off", "tasklock (redis) with `?history_max=0`: no audit trail (XADD)"),
    ("redis", "floor-redis-benchmark", "floor: `redis-benchmark -c 1 -t ping` (PING_MBULK), 2 round trips"),
    ("redis", "floor-ping", "floor: 2 × PING over a bare socket (bench_redis)"),
    ("redis", "floor-eval", "floor: tasklock's own claim + release scripts by EVALSHA over a bare socket"),
    ("redis", "anchor-redis-py", "anchor: redis-py `Lock` acquire + release"),
    ("redis", "anchor-redlock", "anchor: `redlock` lock + unlock (ioredis)"),
    ("postgres", "ours", "tasklock (postgres)"),
    ("postgres", "floor-row-pgbench", "floor: pgbench, INSERT … ON CONFLICT DO NOTHING; DELETE (2 commits)"),
    ("postgres", "floor-row-libpq", "floor: the same two statements through libpq (bench_postgres)"),
    ("postgres", "anchor-advisory-pgbench", "anchor: pgbench, `pg_advisory_lock`; `pg_advisory_unlock`"),
    ("postgres", "anchor-advisory-libpq", "anchor: the same through libpq (bench_postgres)"),
    ("github", "ours", "tasklock (GitHub test server on 127.0.0.1, no latency added)"),
    ("etcd", "ours", "tasklock (etcd, through the v3 JSON gateway)"),
    ("etcd", "floor-txn", "floor: txn put-if-absent (with a lease) + txn delete (compare MOD), bare libcurl + jansson, one kept-alive connection (bench_etcd)"),
    ("etcd", "floor-store-txns", "floor: tasklock's own claim and release txns, sent bare the same way (bench_etcd)"),
    ("etcd", "anchor-v3lock", "anchor: etcd's lock service on the gateway, `/v3/lock/lock` + `/v3/lock/unlock`, lease granted once (bench_etcd)"),
    ("etcd", "anchor-etcd3", "anchor: node `etcd3` `client.lock(name).acquire()` + `release()` (gRPC; a lease granted and revoked each cycle)"),
    ("memory", "ours", "tasklock (memory store: the library without I/O)"),
]
w("| store | what | cycles/s | cycle p50 / p99 (ms) | ours ÷ this |")
w("|---|---|---|---|---|")
for store, subject, label in subjects:
    s = cyc(store, subject)
    if not s:
        w("| %s | %s | not measured | | |" % (store, label))
        continue
    p50 = med(cyc(store, subject, "cycle_p50_ms"))
    p99 = med(cyc(store, subject, "cycle_p99_ms"))
    lat = "%s / %s" % (fmt_ms(p50), fmt_ms(p99)) if p50 is not None else (
        "mean %s" % fmt_ms(med(cyc(store, subject, "cycle_mean_ms")))
        if cyc(store, subject, "cycle_mean_ms") else "")
    rr = "" if subject.startswith("ours") else ratio_text(ratio(ours.get(store, {}), s))
    w("| %s | %s | %s | %s | %s |" % (store, label, med_spread(s), lat, rr))
w("")
erq = cyc("etcd", "ours", "requests_per_cycle")
if erq:
    w("etcd: a tasklock cycle made %s gateway requests (the store's own counters, "
      "`tl__etcd_stats`), the same two as the floor: a claim of a free key is one txn while the "
      "lease is fresh, a release one txn. The store's txns do more than the floor's: the claim "
      "compares the record's absence and an empty line, and writes the record, the owner key, "
      "the liveness key (on the lease) and an audit event; the release compares token and "
      "owner, deletes the three keys, writes an event and counts the trail. etcd here writes its "
      "WAL to the same disk as everything else, with an fsync per write txn. Not pinned." %
      med_spread(erq, 2))
    w("")
rt = cyc("redis", "floor-redis-benchmark", "rtt_p50_ms")
if rt:
    w("Loopback round trip (redis-benchmark PING, p50 of each repetition's median): %s ms." %
      med_spread(rt, 3))
    w("")

# 2. CLI
w("## 2. The CLI against one-machine anchors")
w("")
w("`bench_exec`: fork + exec + wait in a loop (no shell), the command's output to /dev/null. "
  "Process start dominates all three.")
w("")
w("| command | runs/s | run p50 / p99 (ms) | `tasklock run` ÷ this |")
w("|---|---|---|---|")
for subject, label in [("ours-run", "`tasklock -s sqlite:FILE run KEY -- true`"),
                       ("anchor-flock", "`flock FILE true`"),
                       ("ours-run-etcd", "`tasklock -s etcd://HOST:PORT run KEY -- true` (the same etcd)"),
                       ("anchor-etcdctl", "`etcdctl lock L true` (private etcd on 127.0.0.1)")]:
    s = cyc("cli", subject, "runs_per_s")
    if not s:
        w("| %s | not measured | | |" % label)
        continue
    lat = "%s / %s" % (fmt_ms(med(cyc("cli", subject, "run_p50_ms"))),
                       fmt_ms(med(cyc("cli", subject, "run_p99_ms"))))
    rr = "" if subject == "ours-run" else ratio_text(ratio(cli_ours, s))
    w("| %s | %s | %s | %s |" % (label, med_spread(s), lat, rr))
w("")
if cli_ours_etcd and cli_etcd:
    w("On etcd: `tasklock run` ÷ `etcdctl lock` = %s (both on the same private etcd; "
      "`tasklock` hands an etcd:// store to `tasklock-net`, which links libcurl)." %
      ratio_text(ratio(cli_ours_etcd, cli_etcd)))
    w("")

# 3. Contention
ec = env_contention or env


def setting(e, name, default="?"):
    for kv in e.get("settings", "").split():
        if kv.startswith(name + "="):
            return kv.split("=", 1)[1]
    return default


w("## 3. Contention: the line, one key, P processes")
w("")
w("`bench_contend`: P processes (4 and 8), each its own manager and worker id, loop for %s s "
  "on one key: `tl_acquire` with the default strategy (RETRY, bounded by the end of the run), "
  "an empty critical section that checks exclusivity in shared memory, `tl_release`, after a 0.5 s warm-up of the same loop (first connections, prepared statements, scripts) that is not measured. **With "
  "the line** (the default), a worker that finds the key held joins the key's line and is woken "
  "by the store when its turn comes (Redis: a push to its own list; PostgreSQL: NOTIFY on its "
  "own channel; SQLite: a datagram to a socket of its own, and it also polls its own position; etcd: a watch on its predecessor's waiter key, the head's on the lock record; GitHub: its queued claim comment, where the "
  "store has a line). **Without the line** (`bench_contend -L`: `struct tl_options.no_line`), "
  "waiters back off and poll and the first claim wins, as before the line: the baseline. Each "
  "repetition runs every configuration both ways, one right after the other (the order "
  "alternates between repetitions); ratios are taken within a repetition, then summarised "
  "(median, min–max). Wait = from calling acquire to holding the lock; a worker still waiting "
  "at the end counts what it has waited, so a starved worker is never hidden. Cycle time = "
  "the run's time ÷ its critical sections (on one key, one hand-over). Hand-over = from the "
  "holder calling `tl_release` to the next holder's `tl_acquire` returning. Wake-ups per "
  "release = the sum of `tl_metrics.wakeups` over the workers ÷ their releases (warm-up "
  "included, as the counters are). Waiting for a CPU = the time the workers' main threads "
  "were runnable but not running (`/proc/self/schedstat`), summed over the workers, per second "
  "of the run: what the machine took from the hand-overs. "
  "redis-py's `Lock` in the same loop (blocking acquire, its default 0.1 s polling) for "
  "comparison." % setting(ec, "CONTEND_SECONDS"))
w("")
if env_contention:
    w("These figures come from a run of this section alone (or with the others its command names): `%s`, %s, source %s, %s "
      "repetitions of %s s; load average %s at the start, %s at the end; CPU pressure "
      "(runnable tasks kept waiting, 60 s average) %s at the start, %s at the end; %s s in all. "
      "The machine has %s cores shared with other work: the figures are noisy, hence the "
      "ratios within a repetition and the medians." % (
          env_contention.get("command", "?"), env_contention.get("date", "?"),
          env_contention.get("git", "?"), setting(ec, "CONTEND_REPS"),
          setting(ec, "CONTEND_SECONDS"), env_contention.get("load_average_start", "?"),
          env_contention.get("load_average_end", "?"),
          env_contention.get("pressure_start", "?").strip(),
          env_contention.get("pressure_end", "?").strip(), env_contention.get("runtime_s", "?"),
          env_contention.get("nproc", "?")))
    w("")
SUBJECTS = [("ours", "tasklock, line"), ("ours-no-line", "tasklock, no line"),
            ("anchor-redis-py", "redis-py `Lock`")]
w("| store | P | what | critical sections/s | cycle time (ms) | longest wait (ms) | longest "
  "wait in cycle times (max) | waits over 2 × P cycle times | shares min–max | workers "
  "starved | overlaps |")
w("|---|---|---|---|---|---|---|---|---|---|---|")
for store in LINE_STORES + ["github"]:
    for p in (4, 8):
        for subject, label in SUBJECTS:
            cfg = fcfg(store, subject, p)
            cs = series(contention, store, subject, "cs_per_s", cfg)
            if not cs and store == "etcd" and subject == "ours" and not any(
                    k[0] == "etcd" for k in contention):
                w("| etcd | %d | %s | not measured | | | | | | | |" % (p, label))
                continue
            if not cs:
                if subject == "ours":
                    w("| %s | %d | %s | not measured | | | | | | | |" % (store, p, label))
                continue
            if "-cs" in cfg:
                label += ", critical section %s ms" % cfg.split("-cs")[1]
            ic = in_cycles(store, subject, p)
            over = series(contention, store, subject, "waits_over_2p_pct", cfg)
            smin = series(contention, store, subject, "share_min", cfg)
            smax = series(contention, store, subject, "share_max", cfg)
            starved = series(contention, store, subject, "workers_starved", cfg)
            lw = series(contention, store, subject, "longest_wait_ms", cfg)
            ov = series(contention, store, subject, "overlaps", cfg)
            w("| %s | %d | %s | %s | %s | %s | %s (%s) | %s | %s–%s | %s | %s |" % (
                store, p, label, med_spread(cs), fmt_ms(1000.0 / med(cs)) if med(cs) else "–",
                fmt_ms(med(lw)), fmt(med(ic), 1) if ic else "–",
                fmt(max(ic.values()), 1) if ic else "–",
                ("%s %%" % fmt(med(over), 2)) if over else "–",
                fmt(med(smin), 2), fmt(med(smax), 2),
                ("%s (max %s)" % (fmt(med(starved), 0), fmt(max(starved.values()), 0)))
                if starved else "–", fmt(max(ov.values()), 0) if ov else "–"))
w("")
w("What the line costs and what it does, per configuration (line ÷ no line within each "
  "repetition; hand-overs as medians of each run's p50 and p99, and the longest of any run):")
w("")
w("| store | P | throughput, line ÷ no line | wake-ups per release | acquires queued per "
  "critical section | hand-over p50 / p99 / longest (ms), line | the same, no line | workers "
  "waiting for a CPU (ms per s), line / no line |")
w("|---|---|---|---|---|---|---|---|")
for store in LINE_STORES + ["github"]:
    for p in (4, 8):
        a = fser(store, "ours", p, "cs_per_s")
        if not a:
            continue
        r = ratio(a, fser(store, "ours-no-line", p, "cs_per_s"))

        def ho(subject):
            p50 = fser(store, subject, p, "handover_p50_ms")
            p99 = fser(store, subject, p, "handover_p99_ms")
            mx = fser(store, subject, p, "handover_max_ms")
            if not p50:
                return "–"
            return "%s / %s / %s" % (fmt_ms(med(p50)), fmt_ms(med(p99)), fmt_ms(max(mx.values())))
        wk = fser(store, "ours", p, "wakeups_per_release")
        qd = fser(store, "ours", p, "queued_per_cs")
        rq = fser(store, "ours", p, "runq_wait_ms_per_s")
        rq0 = fser(store, "ours-no-line", p, "runq_wait_ms_per_s")
        w("| %s | %d | %s | %s | %s | %s | %s | %s / %s |" % (
            store, p, ratio_text(r) if r else "– (no line in this build)",
            med_spread(wk, 2) if wk else "–", med_spread(qd, 2) if qd else "–",
            ho("ours"), ho("ours-no-line"), fmt(med(rq), 0) if rq else "–",
            fmt(med(rq0), 0) if rq0 else "–"))
w("")

# GitHub: hand-overs and their requests
gh_rows = []
for p in (4, 8):
    for subject, label in SUBJECTS[:2]:
        cfg = fcfg("github", subject, p)
        cs = series(contention, "github", subject, "cs_per_s", cfg)
        if not cs:
            continue
        gh_rows.append((p, subject, label, cfg, cs))
if gh_rows:
    has_line = not any(k[0] == "github" and k[3] == "has_line" for k in contention)
    w("GitHub (the test server on 127.0.0.1, no latency added), one issue, runs of %s s in %s "
      "(a waiter reads the issue every second, so a hand-over takes about "
      "that long: the runs must be long enough for P hand-overs), a critical section "
      "of %s ms (every critical section leaves a completion comment on the issue, and every 100 "
      "comments cost each list read one more request: a tight loop on one issue would measure "
      "pagination more than locking). The GitHub store %s. Requests and writes per hand-over: "
      "the test server's counters over the run's window ÷ its critical sections, the waiters' "
      "polling included." % (
          setting(ec, "GH_CONTEND_SECONDS"),
          "the first repetition only" if setting(ec, "GH_CONTEND_REPS") == "1" else
          "the first %s repetitions" % setting(ec, "GH_CONTEND_REPS"),
          gh_rows[0][3].split("-cs")[-1] if "-cs" in gh_rows[0][3] else "0",
          "has its line in this build" if has_line else
          "has no line in this build (its line is in progress on another branch), so these are "
          "the figures without it, the baseline for its line"))
    w("")
    w("| P | what | hand-overs/s | longest wait (ms) | longest wait in hand-overs (max) | "
      "requests per hand-over | writes per hand-over | comments on the issue at the end |")
    w("|---|---|---|---|---|---|---|---|")
    for p, subject, label, cfg, cs in gh_rows:
        ic = in_cycles("github", subject, p)
        lw = series(contention, "github", subject, "longest_wait_ms", cfg)
        rq = series(contention, "github", subject, "requests_per_cs", cfg)
        wr = series(contention, "github", subject, "writes_per_cs", cfg)
        cm = series(contention, "github", subject, "issue_comments_after", cfg)
        w("| %d | %s | %s | %s | %s (%s) | %s | %s | %s |" % (
            p, label, med_spread(cs), fmt_ms(med(lw)), fmt(med(ic), 1) if ic else "–",
            fmt(max(ic.values()), 1) if ic else "–", med_spread(rq, 1) if rq else "–",
            med_spread(wr, 2) if wr else "–", fmt(max(cm.values()), 0) if cm else "–"))
    w("")
    ln = [(p, fser("github", "ours", p, "workers_starved"), fser("github", "ours-no-line", p,
           "workers_starved"), fser("github", "ours", p, "handover_p50_ms")) for p in (4, 8)]
    w("With the line every worker gets its turns (workers without a critical section: %s with "
      "it, %s without it), and a hand-over takes about one of the waiters' reads of the issue "
      "(a median of %s); the requests per hand-over include the waiters' reads (304s too, "
      "which cost no rate budget). Without the line the holder mostly takes the issue again at "
      "once, so its critical sections cost fewer requests each but are not hand-overs." % (
          " and ".join("%s at P = %d" % (fmt(max(a.values()), 0) if a else "–", p)
                       for p, a, b, h in ln),
          " and ".join("%s at P = %d" % (fmt(max(b.values()), 0) if b else "–", p)
                       for p, a, b, h in ln),
          " and ".join("%s ms at P = %d" % (fmt_ms(med(h)) if h else "–", p)
                       for p, a, b, h in ln)))
    w("")
w("Shares of the critical sections on one key, largest to smallest (in each repetition the "
  "workers' shares are sorted, then the median of each rank is taken over the repetitions; a "
  "fair lock gives every worker 1/P):")
w("")
w("| store | processes | what | shares, largest to smallest |")
w("|---|---|---|---|")
for store in LINE_STORES + ["github"]:
    for p in (4, 8):
        for subject, label in SUBJECTS:
            cfg = fcfg(store, subject, p)
            sh = [series(contention, store, subject, "share_w%d" % i, cfg) for i in range(p)]
            if not all(sh):
                continue
            reps = sorted(set.intersection(*(set(x) for x in sh)))
            ranked = [sorted((x[r] for x in sh), reverse=True) for r in reps]
            cols = [statistics.median(rk[i] for rk in ranked) for i in range(p)]
            w("| %s | %d | %s | %s |" % (store, p, label, " ".join(fmt(c, 2) for c in cols)))
w("")

# 4. Heartbeat
w("## 4. Heartbeat cost")
w("")
w("`bench_heartbeat`: one manager acquires N locks and holds them while its heartbeat thread "
  "renews them; the process's CPU time (getrusage: every thread) is read over windows. "
  "**Measured directly**: 1,000 locks renewed at the default interval itself (30 s), one window "
  "of two intervals and a second, so every lock is renewed twice inside it: the CPU time over "
  "the window's length is the share of a core. **Extrapolated**: 10,000 locks (GitHub 1,000) "
  "renewed every %s ms so that many rounds fall in a short run (a round longer than that runs "
  "back to back); the CPU time of each window divided by its renewals is the cost of one "
  "renewal, and N renewals per default interval (30 s; GitHub 75 s = ¼ of the 5 min lock "
  "timeout) at that cost is the share of a core at the default settings. Memory: resident set "
  "(VmRSS) after connecting and while holding the N locks." %
  (env.get("settings", "").split("HB_INTERVAL_MS=")[-1].split()[0]
   if "HB_INTERVAL_MS=" in env.get("settings", "") else "?"))
w("")
env_heartbeat = section_env("heartbeat")
if env_heartbeat:
    w("These figures come from a run of this section alone (or with the others its command "
      "names): `%s`, %s, source %s; load average %s at the start, %s at the end; %s s in all." % (
          env_heartbeat.get("command", "?"), env_heartbeat.get("date", "?"),
          env_heartbeat.get("git", "?"), env_heartbeat.get("load_average_start", "?"),
          env_heartbeat.get("load_average_end", "?"), env_heartbeat.get("runtime_s", "?")))
    w("")
w("| store | locks | renewal interval | acquire all (s) | renewals/s | CPU per renewal (µs) | % of a core at the default interval | same, per 1,000 locks | RSS connected → holding (MiB) | bytes per lock | failed / lost |")
w("|---|---|---|---|---|---|---|---|---|---|---|")
for store in ["sqlite", "redis", "postgres", "github"]:
    cfgs = hb_configs(store)
    if not cfgs:
        w("| %s | not measured | | | | | | | | | |" % store)
        continue
    for cfg in cfgs:
        n = int(cfg[1:])

        def hv(m):
            return med(series(heartbeat, store, "ours", m, cfg))

        direct = hb_direct(store, cfg)
        per = hb_windows(store, cfg, "cpu_us_per_renewal")
        rps = hb_windows(store, cfg, "renewals_per_s")
        pct = hb_windows(store, cfg, "core_pct_measured" if direct else "core_pct_at_default")
        rc, rh = hv("rss_connected_kb"), hv("rss_held_kb")
        iv = hv("interval_ms")
        w("| %s | %s | %s | %s | %s | %s | %s | %s | %s → %s | %s | %s / %s |" % (
            store, fmt(n, 0),
            "%s s (the default: measured directly)" % fmt(iv / 1000.0, 0) if direct else
            "%s s (short: extrapolated to %s s)" % (fmt(iv / 1000.0, 0),
                                                    fmt(hv("default_interval_ms") / 1000.0, 0)),
            fmt(hv("acquire_all_s"), 1), med_spread(rps, 0),
            med_spread(per, 1), med_spread(pct, 3, " %"),
            fmt(med(pct) * 1000.0 / n, 3) + " %" if pct else "–",
            fmt(rc / 1024.0, 1) if rc else "–", fmt(rh / 1024.0, 1) if rh else "–",
            fmt((rh - rc) * 1024.0 / n, 0) if rc and rh else "–",
            fmt(hv("heartbeats_failed"), 0), fmt(hv("locks_lost"), 0)))
w("")
w("Spreads here are over the measurement windows of one run (extrapolated runs: %s windows)." %
  (env.get("settings", "").split("HB_WINDOWS=")[-1].split()[0]
   if "HB_WINDOWS=" in env.get("settings", "") else "?"))
w("")

if ehc:
    def eh(m):
        return hb_windows("etcd", ehc, m)

    def ehv(m):
        return med(series(heartbeat, "etcd", "ours", m, ehc))

    n = int(ehc[1:].split("-")[0])
    w("etcd (`bench_etcd … heartbeat`): one manager holds %s locks with a lock timeout of %s s "
      "(one %s s lease for all of them), renewed every %s s by the heartbeat thread; windows of "
      "three intervals. Its counters (`tl__etcd_stats` of the heartbeat thread's own store "
      "instance) give the keep-alives and the gateway requests behind the renewals; etcd's own "
      "CPU is read from /proc over the same windows. The CPU per renewal, at %s renewals per "
      "default interval (30 s, the interval of the default 5 min lock timeout), is the share "
      "of a core at the default settings." % (
          fmt(n, 0), fmt(ehv("interval_ms") * 3 / 1000.0, 0),
          fmt(ehv("interval_ms") * 3 / 1000.0, 0), fmt(ehv("interval_ms") / 1000.0, 0),
          fmt(n, 0)))
    w("")
    w("| locks | lock timeout / interval | acquire all (s) | renewals per window | keep-alives "
      "per interval | gateway requests per renewal | CPU per renewal (µs) | % of a core, "
      "measured at this interval | % of a core at the default 30 s interval | etcd's own CPU, "
      "% of a core, at this interval | failed / lost |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    w("| %s | %s s / %s s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s |" % (
        fmt(n, 0), fmt(ehv("interval_ms") * 3 / 1000.0, 0), fmt(ehv("interval_ms") / 1000.0, 0),
        fmt(ehv("acquire_all_s"), 1), med_spread(eh("renewals"), 0),
        med_spread(eh("keepalives_per_interval"), 2), med_spread(eh("requests_per_renewal"), 2),
        med_spread(eh("cpu_us_per_renewal"), 1), med_spread(eh("core_pct_measured"), 2, " %"),
        med_spread(eh("core_pct_at_default"), 3, " %"),
        med_spread(eh("etcd_core_pct"), 1, " %") if eh("etcd_core_pct") else "–",
        fmt(ehv("heartbeats_failed"), 0), fmt(ehv("locks_lost"), 0)))
    w("")

# 5. GitHub
w("## 5. GitHub store: requests per operation, latency")
w("")
w("`bench_github` against the project's GitHub test server, its counters read "
  "(`GET /_admin/stats`) around each call; the server reset before each measurement. "
  "Budget: docs/github.md (requests per operation). The store runs with `write_budget=off`: "
  "GitHub's own content limits (80 writes/min, 500/h per account) would otherwise cap a single "
  "key at 16 acquire+release cycles a minute (5 writes each). Sessions are on (the default): "
  "a heartbeat right after an acquire relies on the session written moments before (no "
  "write), and a manager's first acquire also posts its session comment.")
w("")
if env_github:
    w("These figures come from a run of this section alone (or with the others its command names): `%s`, %s, source %s; "
      "load average %s at the start, %s at the end; %s s in all." % (
          env_github.get("command", "?"), env_github.get("date", "?"), env_github.get("git", "?"),
          env_github.get("load_average_start", "?"), env_github.get("load_average_end", "?"),
          env_github.get("runtime_s", "?")))
    w("")
w("| operation | requests | writes | answered 304 (free) | budget (requests / writes) |")
w("|---|---|---|---|---|")
for op, label, budget in [("acquire_first", "a manager's first acquire (posts its session)",
                           "7 / 3, plus a sweep's deletes"),
                          ("acquire", "acquire, uncontended", "4 / 2"),
                          ("heartbeat", "heartbeat (`tl_renew`) just after the acquire",
                           "1 / 0 (the session was written moments before); 2 / 1 when it is due, "
                           "once per manager"),
                          ("release", "release", "4 / 3"),
                          ("busy_first", "acquire while held, first look",
                           "2 / 0 (the issue's comments, the holder's session)"),
                          ("busy_again", "acquire while held, again (conditional)",
                           "2 / 0, both 304s")]:
    rq = series(github, "github", "ours", op + "_requests")
    if not rq:
        w("| %s | not measured | | | %s |" % (label, budget))
        continue
    w("| %s | %s | %s | %s | %s |" % (
        label, med_spread(rq, 0), med_spread(series(github, "github", "ours", op + "_writes"), 0),
        med_spread(series(github, "github", "ours", op + "_not_modified"), 0), budget))
w("")
w("| latency added per request | acquire (ms) | in round trips of that latency | requests | release (ms) |")
w("|---|---|---|---|---|")
for lat in (0, 50, 200):
    cfg = "latency%d" % lat
    a = series(github, "github", "ours", "acquire_ms", cfg)
    if not a:
        w("| %d ms | not measured | | | |" % lat)
        continue
    w("| %d ms | %s | %s | %s | %s |" % (
        lat, med_spread(a, 1), med_spread(series(github, "github", "ours", "acquire_round_trips", cfg), 2)
        if lat else "–",
        fmt(med(series(github, "github", "ours", "acquire_requests", cfg)), 0),
        med_spread(series(github, "github", "ours", "release_ms", cfg), 1)))
w("")

# 6. Diagnostics
def dv(store, subject, metric):
    return med(series(diag, store, subject, metric))


if diag:
    w("## 6. Diagnostics: where the time goes")
    w("")
    w("Read from the servers' own counters around one more run of each (section 5 of "
      "`bench/run.sh`): Redis's `INFO commandstats` (after `CONFIG RESETSTAT`), PostgreSQL's "
      "`pg_stat_wal` (after `pg_stat_reset_shared('wal')`).")
    w("")
    ev, ping = dv("redis", "ours", "evalsha_usec_per_call"), dv("redis", "floor-redis-benchmark",
                                                                "ping_usec_per_call")
    if ev is not None:
        calls = dv("redis", "ours", "evalsha_calls") or 0
        inner = 0.0
        parts = []
        for cmd in ["time", "hmget", "exists", "get", "set", "hset", "pexpire", "del", "xadd",
                    "publish"]:
            u, c = dv("redis", "ours", cmd + "_usec_per_call"), dv("redis", "ours", cmd + "_calls")
            if u is not None and c and calls:
                per_cycle = u * c / (calls / 2.0)
                inner += per_cycle
                parts.append("%s %s" % (cmd.upper(), fmt(per_cycle, 1)))
        py_ev, py_set = dv("redis", "anchor-redis-py", "evalsha_usec_per_call"), dv(
            "redis", "anchor-redis-py", "set_usec_per_call")
        w("| Redis, server time per cycle | µs |")
        w("|---|---|")
        w("| tasklock: 2 × EVALSHA (claim, release) | %s (%s per call) |" % (fmt(2 * ev, 1),
                                                                        fmt(ev, 1)))
        w("| … of which the Redis commands the scripts call | %s (%s) |" % (
            fmt(inner, 1), ", ".join(parts)))
        w("| … so the Lua scripts themselves | %s |" % fmt(2 * ev - inner, 1))
        if py_ev is not None and py_set is not None:
            w("| redis-py `Lock`: SET NX PX + EVALSHA (release) | %s |" % fmt(py_set + py_ev, 1))
        if ping is not None:
            w("| floor: 2 × PING | %s |" % fmt(2 * ping, 2))
        w("")
    if dv("redis", "lua-cost", "return1_usec") is not None:
        w("Inside the scripts (`bench/redis_lua_cost.py`: scripts of its own, built from "
          "tasklock's prelude, by EVALSHA on the same Redis; server time per call, or per "
          "iteration of a loop inside one script, median of 5):")
        w("")
        w("| piece | µs of server time |")
        w("|---|---|")
        for metric, label in [
                ("return1", "any script call: an EVALSHA of `return 1`"),
                ("return1_args", "the same with a claim's 3 keys and 9 arguments"),
                ("prelude", "the prelude (helpers and tables defined on each call) + `return 1`"),
                ("read_free", "read() of a free key (HMGET of 8 fields, EXISTS), in a loop"),
                ("read_held", "read() of a held key (HMGET, checks, 4 numbers parsed), in a loop"),
                ("time", "now_us() (TIME, to a number), in a loop"),
                ("note", "note() (the history XADD), in a loop")]:
            w("| %s | %s |" % (label, fmt(dv("redis", "lua-cost", metric + "_usec"), 2)))
        w("")
    if dv("postgres", "ours", "wal_bytes_per_cycle") is not None:
        w("| PostgreSQL, per cycle | WAL records | WAL bytes | WAL flushes (fsync) |")
        w("|---|---|---|---|")
        for subject, label in [("ours", "tasklock"), ("floor-row-pgbench", "floor: pgbench row cycle")]:
            w("| %s | %s | %s | %s |" % (label, fmt(dv("postgres", subject, "wal_records_per_cycle"), 1),
                                        fmt(dv("postgres", subject, "wal_bytes_per_cycle"), 0),
                                        fmt(dv("postgres", subject, "wal_syncs_per_cycle"), 2)))
        w("")

# 7. Claim-next
if claim_pm:
    w("## 7. Claim-next: P workers draining a queue")
    w("")
    w("`bench_claim`: P worker processes (each its own manager and connection) finish M tasks "
      "on one store, started together after each has connected and warmed up (a claim-next, a "
      "finish and a done lookup on keys of its own). The task's work is nothing: the store is "
      "what is measured. Three ways, run one after the other in each repetition, their order "
      "rotating between repetitions, each on fresh keys (SQLite: a fresh file):")
    w("")
    w("- **claim-next** — `tasklock work`'s loop through the library: `tl_claim_next` "
      "(fail-fast), then per task `tl_release_claim_next(done)` (release, done marker and the "
      "next claim in one store call) until `TL_ENOTASK`; a worker that finds every task left "
      "held (the tail of the queue) waits in `tl_claim_next` with RETRY, as `work` does. Every "
      "call is given all M keys, in order, as `work` gives its candidates.")
    w("- **naive** — the loop a user writes without claim-next: for each key in order, "
      "`tl_acquire` fail-fast; if it succeeds, `tl_list_done` of that key (the done record: "
      "the same markers claim-next skips), then `tl_release_with(done)` if it was not done, a "
      "plain release if it was. Three round trips per task won; every worker walks every key.")
    w("- **floor** — the store's one-round-trip floor per task: one minimal round trip per task "
      "on the same kind of connection, the M tasks split among the P processes. SQLite: `BEGIN "
      "IMMEDIATE`; `INSERT OR REPLACE` of one row; `COMMIT` (WAL, synchronous=FULL, as the "
      "store). Redis: `SET` over a bare socket. PostgreSQL: a prepared single-row upsert, "
      "autocommit: one durable commit, the least a claim must write; **floor-rtt**, a prepared "
      "`SELECT $1::int` that writes nothing, is shown beside it (the network and protocol alone: "
      "PostgreSQL's commit, an fsync of its WAL, is most of a durable round trip here).")
    w("")
    w("Tasks/s = M ÷ the time from the common start to the last task finished (by any worker). "
      "A claim-next worker in the tail learns only after that that nothing is left: the time "
      "until every worker had stopped is in the last column (SQLite cannot wake a waiting "
      "claimer: it polls). Ratios are taken within each repetition, then summarised (median, "
      "min–max).")
    w("")
    ecl = env_claim or env
    if env_claim:
        w("These figures come from a run of this section alone (or with the others its command names): `%s`, %s, source %s, %s "
          "repetitions; load average %s at the start, %s at the end; CPU pressure (runnable "
          "tasks kept waiting, 60 s average) %s at the start, %s at the end; %s s in all. The "
          "machine has %s cores shared with other engineers' test suites: single runs swing by "
          "2× or more (the PostgreSQL commit floor most: its fsync shares the disk), hence the "
          "medians and the ratios within a repetition." % (
              env_claim.get("command", "?"), env_claim.get("date", "?"),
              env_claim.get("git", "?"),
              setting(ecl, "CLAIM_REPS", str(max(r for v in claim.values() for r in v))),
              env_claim.get("load_average_start", "?"), env_claim.get("load_average_end", "?"),
              env_claim.get("pressure_start", "?").strip(),
              env_claim.get("pressure_end", "?").strip(), env_claim.get("runtime_s", "?"),
              env_claim.get("nproc", "?")))
        w("")
    w("| store | tasks | workers | claim-next (tasks/s) | naive (tasks/s) | floor (tasks/s) | "
      "claim-next ÷ floor | claim-next ÷ naive | naive: acquires per task | every worker "
      "stopped after (s): claim-next / naive |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for m in claim_m:
        for store in CLAIM_STORES:
            for p in sorted({p for p, mm in claim_pm if mm == m}):
                nx, nv, fl = (cser(store, s_, p, m) for s_ in ("ours-next", "naive", "floor"))
                if not (nx or nv or fl):
                    continue
                err = cser(store, "ours-next", p, m, "errors")
                nx_text = med_spread(nx) if nx else (
                    "failed (%s errors)" % fmt(max(err.values()), 0) if err else "not measured")
                if nx and err and max(err.values()) > 0:
                    nx_text += "; errors in a run"
                fl_text = med_spread(fl)
                fr = cser(store, "floor-rtt", p, m)
                if fr:
                    fl_text += "; rtt %s" % fmt(med(fr))
                ex1 = cser(store, "ours-next", p, m, "seconds_to_exit")
                ex2 = cser(store, "naive", p, m, "seconds_to_exit")
                w("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s / %s |" % (
                    store, fmt(m, 0), p, nx_text, med_spread(nv), fl_text,
                    ratio_text(ratio(nx, fl)), ratio_text(ratio(nx, nv)),
                    fmt(med(cser(store, "naive", p, m, "acquires_per_task")), 2),
                    fmt(med(ex1), 2) if ex1 else "–", fmt(med(ex2), 2) if ex2 else "–"))
    w("")
    # Per-task time of one worker's claim-next with the long and the short list: the cost of
    # the candidates given to every call.
    if len(claim_m) > 1:
        lo_m, hi_m = claim_m[-1], claim_m[0]
        parts = []
        for store in CLAIM_STORES:
            a, b = cser(store, "ours-next", 1, hi_m), cser(store, "ours-next", 1, lo_m)
            fa = cser(store, "floor", 1, hi_m)
            if a and b:
                parts.append("%s %s ms with %s candidates, %s ms with %s (floor %s ms)" % (
                    store, fmt(1000.0 / med(a), 2), fmt(hi_m, 0), fmt(1000.0 / med(b), 2),
                    fmt(lo_m, 0), fmt(1000.0 / med(fa), 3) if fa else "–"))
        if parts:
            w("One worker's time per task with claim-next (median): %s." % "; ".join(parts))
            w("")
    w("**Why the targets are missed.** %s" % WHY_CLAIM)
    w("")
    w("**Where a call's time goes** (profiled by hand on the same machine, 2026-12-04 17:45 "
      "UTC, one worker, 2,000 tasks, not regenerated by `make bench`). Redis (`INFO "
      "commandstats` after `CONFIG RESETSTAT`): each EVALSHA of release-and-claim-next took "
      "46–48 µs of server time, of which the Redis commands it calls (HSET, XADD, HMGET, "
      "PEXPIRE, EXISTS, TIME, ...) are about 12 µs and the Lua interpreter the rest; the floor's "
      "SET took 1.7 µs. The client's CPU (`perf stat`) was about 40 µs per task, a sixth of it "
      "comparing the list with the remembered one; tasks/s 8,400–10,400 against the floor's "
      "39,000–40,000. Before the windows, with 2,000 candidates, an EVALSHA took 760 µs. "
      "PostgreSQL: `tasklock_next_v5` over 2 to 128 fresh candidates took 0.9 to 3 ms in psql "
      "with no other client (no growth with the window), a single-row INSERT with its commit "
      "0.7 ms; the client's CPU was 0.1 ms per task. Before the windows, with 8 workers, most "
      "samples of `pg_stat_activity` were finishes waiting on another transaction's insert of "
      "the same first undone key (`Lock:transactionid`); a claimer now takes that key's "
      "advisory lock first and passes over it when another has it.")
    w("")

# 8. GitHub sessions: the writes of holding locks (BENCH_ONLY=sessions)
SESS_CFGS = sorted({(int(k[2].split("-")[0][1:]), int(k[2].split("-")[1][1:]))
                    for k in sessions if k[0] == "github" and k[2].startswith("n")})
if SESS_CFGS:
    w("## 8. GitHub sessions: writes per hour of holding locks")
    w("")
    w("`bench_github -m sessions` against the GitHub test server: M managers (threads of one "
      "process, each its own manager, worker id and heartbeat thread) hold N locks between them "
      "(fail-fast acquires of issues 1..N, dealt round-robin), with sessions (`?sessions=on`: "
      "each manager's heartbeat edits its one session comment) or per-claim heartbeats "
      "(`?sessions=off`: every held lock's claim is edited), with a short lock timeout so that "
      "many heartbeat intervals fit in a short run. Once every lock has been renewed after the "
      "last acquire, the server's write counter (`GET /_admin/stats`: POST, PATCH, DELETE) is "
      "read over K intervals; nothing else runs meanwhile. Writes per interval do not depend "
      "on the interval's length, so writes per hour at the default 5 min lock timeout (interval "
      "75 s, 48 an hour) = writes per interval × 48: measured, not computed from the protocol. "
      "Renewals per lock per interval (`tl_metrics.heartbeats_sent` over the window) show the "
      "heartbeats kept up: below 1, a round took longer than the interval and the writes are "
      "fewer than a slower interval would see. GitHub's content-write limit is about %d an "
      "hour per account." % GH_WRITE_LIMIT_H)
    w("")
    if env_sessions:
        w("These figures come from a run of this section alone (or with the others its command names): `%s`, %s, source %s; load "
          "average %s at the start, %s at the end; %s s in all." % (
              env_sessions.get("command", "?"), env_sessions.get("date", "?"),
              env_sessions.get("git", "?"), env_sessions.get("load_average_start", "?"),
              env_sessions.get("load_average_end", "?"), env_sessions.get("runtime_s", "?")))
        w("")
    w("| locks held | managers | lock timeout (interval) | mode | writes per interval | "
      "requests per interval | renewals per lock per interval | writes per hour at the 5 min "
      "timeout | share of 500/h | locks lost |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for n, m in SESS_CFGS:
        for mode, label in (("sessions", "sessions"), ("per-claim", "per-claim")):
            wi = sser(n, m, mode, "writes_per_interval")
            if not wi:
                w("| %s | %d | | %s | not measured | | | | | |" % (fmt(n, 0), m, label))
                continue
            to = med(sser(n, m, mode, "lock_timeout_ms"))
            iv = med(sser(n, m, mode, "interval_ms"))
            wh = sser(n, m, mode, "writes_per_hour_default")
            lost = sser(n, m, mode, "locks_lost")
            w("| %s | %d | %s s (%s ms) | %s | %s | %s | %s | %s | %s %% | %s |" % (
                fmt(n, 0), m, fmt(to / 1000.0, 1), fmt(iv, 0), label, med_spread(wi, 2),
                med_spread(sser(n, m, mode, "requests_per_interval"), 1),
                med_spread(sser(n, m, mode, "renewals_per_lock_interval"), 2),
                med_spread(wh, 0), fmt(100.0 * med(wh) / GH_WRITE_LIMIT_H, 0),
                fmt(max(lost.values()), 0) if lost else "?"))
    w("")
    w("With sessions a manager writes once per interval whatever it holds; per-claim, every "
      "held lock writes once per interval. The requests per interval are mostly each held "
      "lock's list read (a 304 while nothing changed, which costs no primary budget); with "
      "sessions, nearly every renewal after the first in an interval relies on the session "
      "write made within the last quarter of the lock timeout.")
    w("")

# 9. Shared locks and deadlock checks (BENCH_ONLY=modes)
MODES_STORES = ["memory", "sqlite", "redis", "postgres", "etcd", "github"]


def mser(store, subject, config, metric):
    return series(modes, store, subject, metric, config)


def fmt_us(ms):
    """A time given in ms, shown in µs."""
    return "–" if ms is None else fmt(ms * 1000.0)


def modes_not_measured(store, subject):
    for sec, st, sub, why in not_measured:
        if sec == "modes" and st in (store, "all") and sub in (subject, "all"):
            return why
    return None


modes_readers = sorted({int(k[2][1:]) for k in modes
                        if k[1] == "shared" and k[2].startswith("p") and k[2] != "p1"})
modes_w = sorted({int(k[2][1:]) for k in modes if k[1] == "check" and k[2].startswith("w")})
if modes:
    P = modes_readers[-1] if modes_readers else 8
    pc = "p%d" % P
    w("## 9. Shared locks and deadlock checks")
    w("")
    w("`bench_modes`, threads of one process, each with its own manager and store connection "
      "(SQLite: a fresh file per run). **Readers scale:** %d readers acquire one key shared "
      "(`mode = TL_SHARED`, RETRY) and release it in a loop for %s s, against %d exclusive "
      "lockers doing the same (they wait for each other in the key's line), and 1 reader alone; "
      "acquisitions finished within the time, all threads together. The three run one after "
      "the other in each repetition, their order rotating; ratios are taken within a "
      "repetition, then summarised (median, min–max)." % (
          P, setting(env_modes or env, "MODES_SECONDS", "1"), P))
    w("")
    if env_modes:
        w("These figures come from a run of this section alone (or with the others its command names): `%s`, %s, source %s; load "
          "average %s at the start, %s at the end; CPU pressure %s at the start, %s at the end; "
          "%s s in all, on %s cores shared with other work." % (
              env_modes.get("command", "?"), env_modes.get("date", "?"),
              env_modes.get("git", "?"), env_modes.get("load_average_start", "?"),
              env_modes.get("load_average_end", "?"),
              env_modes.get("pressure_start", "?").strip(),
              env_modes.get("pressure_end", "?").strip(), env_modes.get("runtime_s", "?"),
              env_modes.get("nproc", "?")))
        w("")
    w("| store | 1 reader (acq/s) | %d readers, shared (acq/s) | %d lockers, exclusive (acq/s) "
      "| shared ÷ exclusive | %d readers ÷ 1 reader | acquire p50 (ms): shared / exclusive | "
      "errors |" % (P, P, P))
    w("|---|---|---|---|---|---|---|---|")
    for store in MODES_STORES:
        sh1 = mser(store, "shared", "p1", "acquires_per_s")
        shp = mser(store, "shared", pc, "acquires_per_s")
        exp = mser(store, "exclusive", pc, "acquires_per_s")
        if not (sh1 or shp or exp):
            why = modes_not_measured(store, "readers")
            w("| %s | not measured%s | | | | | | |" % (store, ": " + why if why else ""))
            continue
        errs = [max(v.values()) for v in (mser(store, sub, c, "errors") for sub, c in
                (("shared", "p1"), ("shared", pc), ("exclusive", pc))) if v]
        nerr = sum(errs)
        w("| %s | %s | %s | %s | %s | %s | %s / %s | %s |" % (
            store, med_spread(sh1), med_spread(shp), med_spread(exp), ratio_text(ratio(shp, exp)),
            ratio_text(ratio(shp, sh1)), fmt_ms(med(mser(store, "shared", pc, "acquire_p50_ms"))),
            fmt_ms(med(mser(store, "exclusive", pc, "acquire_p50_ms"))),
            fmt(nerr, 0) + (" (a run's figure is then partial)" if nerr else "")))
    w("")
    if modes_w:
        w("**The cost of the deadlock check per wait.** A waiter that holds locks, each time it "
          "joins or refreshes its place in line, reads every waiter of the store (`waiters` with "
          "no key) and searches the wait-for graph; when it finds a cycle by the waiters' lists "
          "it confirms each edge with a read of that key's holders. `bench_modes -m deadlock` "
          "calls that check (`tl__deadlock_check`) directly: a checker holds key A and waits in "
          "the line of key B (held by another manager), with W waiters planted in the lines of "
          "other held keys (each with a holding text naming a key of its own: parsed, no edge). "
          "*check*: no cycle (one waiters read). *with a cycle*: the holder of B also waits for "
          "A, and the checker, the youngest, finds the 2-cycle, confirms its 2 edges and gets "
          "`TL_EDEADLK`. *busy claim*: the same waiter's claim again (`TL_EBUSY`), the round "
          "trip a waiter makes at every turn anyway. Each of %s calls timed alone (memory: 10 "
          "times as many); the checker's store calls counted by a wrapper of its store's ops, "
          "and the server's own count of requests where it keeps one (Redis: every command, "
          "those run inside a script included; etcd: its gRPC calls; the GitHub test server: "
          "its requests)." % setting(env_modes or env, "MODES_CHECKS", "200"))
        w("")
        w("| store | W waiters | waiters listed | check p50 (µs) | busy claim p50 (µs) | check ÷ "
          "busy claim | store calls per check (waiters + holders reads) | server requests per "
          "check | with a cycle: p50 (µs), store calls |")
        w("|---|---|---|---|---|---|---|---|---|")
        for store in MODES_STORES:
            rows = 0
            for W in modes_w:
                cf = "w%d" % W
                ck = mser(store, "check", cf, "p50_ms")
                if not ck:
                    continue
                rows += 1
                bc = mser(store, "busy-claim", cf, "p50_ms")
                cy = mser(store, "check-cycle", cf, "p50_ms")
                srv = mser(store, "check", cf, "server_requests")
                srv_cy = mser(store, "check-cycle", cf, "server_requests")
                scr = mser(store, "check", cf, "server_scripts")
                scr_cy = mser(store, "check-cycle", cf, "server_scripts")
                if srv and scr:
                    srv_text = "%s commands in %s script call%s (with a cycle %s in %s)" % (
                        fmt(med(srv), 0), fmt(med(scr), 0), "" if med(scr) == 1 else "s",
                        fmt(med(srv_cy), 0), fmt(med(scr_cy), 0))
                elif srv:
                    srv_text = "%s (with a cycle %s)" % (fmt(med(srv), 1), fmt(med(srv_cy), 1))
                elif store in ("memory", "sqlite"):
                    srv_text = "– (no server)"
                else:
                    srv_text = "not counted"
                err = sum(max(v.values()) for v in (mser(store, sub, cf, "errors") for sub in
                          ("check", "check-cycle", "busy-claim")) if v)
                w("| %s | %s | %s | %s | %s | %s | %s (%s + %s) | %s | %s µs, %s (%s + %s)%s |" % (
                    store, fmt(W, 0), fmt(med(mser(store, "check", cf, "waiters_listed")), 0),
                    fmt_us(med(ck)), fmt_us(med(bc)),
                    fmt(med(ratio(ck, bc)), 1) if bc and med(bc) else "–",
                    fmt(med(mser(store, "check", cf, "store_calls")), 2),
                    fmt(med(mser(store, "check", cf, "waiters_reads")), 0),
                    fmt(med(mser(store, "check", cf, "holders_reads")), 0),
                    srv_text, fmt_us(med(cy)),
                    fmt(med(mser(store, "check-cycle", cf, "store_calls")), 2),
                    fmt(med(mser(store, "check-cycle", cf, "waiters_reads")), 0),
                    fmt(med(mser(store, "check-cycle", cf, "holders_reads")), 0),
                    "; %s errors" % fmt(err, 0) if err else ""))
            if rows == 0:
                why = modes_not_measured(store, "deadlock-check")
                w("| %s | not measured%s | | | | | | | |" % (store, ": " + why if why else ""))
        w("")
        short = sorted({st for st in MODES_STORES for W in modes_w
                        if med(mser(st, "check", "w%d" % W, "waiters_listed")) is not None
                        and med(mser(st, "check", "w%d" % W, "waiters_listed")) < W + 1})
        if short:
            w("*Waiters listed* should be W + 1 (the planted waiters and the checker's own); on "
              "%s one read of the store's waiters returned fewer than were planted, so its "
              "check looked at fewer waiters than the row's W: a question for that store." %
              ", ".join(short))
            w("")
    w("**What the figures mean.** %s" % why_modes(P))
    w("")

# Not measured
w("## Not measured")
w("")
if not_measured:
    for sec, store, subject, why in not_measured:
        w("- %s, %s, %s: %s" % (sec, store, subject, why))
else:
    w("Everything was measured.")
w("")

w("## How to run it")
w("")
w("`make bench` (= `bench/run.sh`; `BENCH_QUICK=1` for a short trial). It installs the "
  "Debian packages of `scripts/install-deps --bench` and redlock + ioredis and etcd3 (npm, "
  "pinned majors) into `bench/node/`, builds `build-bench` (Release), starts Redis, PostgreSQL and the "
  "GitHub test server through `tests/harness/with-servers` and a private etcd "
  "(`bench/start-etcd`), all on 127.0.0.1, measures, and writes `bench/results/*.csv` and this "
  "file. The drivers are `bench/bench_*.c`, `bench/anchor_redis_py.py`, "
  "`bench/anchor_redlock.js`, `bench/anchor_etcd3.js`, `bench/pgbench_*.sql` and, for section 6, `bench/redis_lua_cost.py`. "
  "`BENCH_ONLY=claim bench/run.sh` measures section 7 alone and keeps the other sections' figures; "
  "`BENCH_ONLY=sessions bench/run.sh` likewise section 8, `BENCH_ONLY=modes bench/run.sh` "
  "section 9.")
w("")

with open(OUT, "w") as f:
    f.write("\n".join(out))
print("report: wrote %s (%d targets: %d met, %d missed, %d not measured)" % (
    OUT, len(checks), sum(1 for c in checks if c[4]), sum(1 for c in checks if c[4] is False),
    sum(1 for c in checks if c[4] is None)), file=sys.stderr)

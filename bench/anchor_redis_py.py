#!/usr/bin/python3
"""anchor_redis_py.py -- redis-py's Lock on the same Redis, as the anchor tasklock is compared to.

    anchor_redis_py.py cycle   URL SECONDS        [--csv FILE --rep N]
    anchor_redis_py.py contend URL SECONDS PROCS  [--csv FILE --rep N]

cycle: one process, one Lock, acquire + release in a loop (SET NX PX, then the release script by
EVALSHA: two round trips), for SECONDS after a short warm-up; cycles per second, p50/p99.

contend: PROCS processes on one key, each with its own connection, acquire (blocking, redis-py's
default polling: sleep 0.1 s between tries) + an empty critical section + release, for SECONDS;
critical sections per second, each worker's share and the longest wait (a worker still waiting
at the end counts with what it has waited so far). Rows go to the CSV in bench_common.h's long
format: rep,store,subject,config,metric,value. Runs with Debian's python3-redis.
"""
import argparse
import multiprocessing
import os
import sys
import time

import redis

LOCK_TIMEOUT_S = 300  # the lock's TTL, as tasklock's default lock timeout (5 min)


def quantile(v, q):
    if not v:
        return 0.0
    v = sorted(v)
    i = int(q * len(v))
    return v[min(i, len(v) - 1)]


def emit(args, config, metric, value):
    if not args.csv:
        return
    with open(args.csv, "a") as f:
        f.write("%d,redis,anchor-redis-py,%s,%s,%.6g\n" % (args.rep, config, metric, value))


def cycle(args):
    r = redis.Redis.from_url(args.url)
    lock = r.lock("bench-redis-py-%d" % os.getpid(), timeout=LOCK_TIMEOUT_S)
    warm_end = time.monotonic() + 0.2
    while time.monotonic() < warm_end:
        lock.acquire()
        lock.release()
    lat = []
    t0 = time.monotonic()
    end = t0 + args.seconds
    while True:
        c0 = time.monotonic()
        if c0 >= end:
            break
        if not lock.acquire():
            sys.exit("anchor_redis_py: acquire failed uncontended")
        lock.release()
        lat.append((time.monotonic() - c0) * 1000)
    rate = len(lat) / (time.monotonic() - t0)
    emit(args, "", "cycles_per_s", rate)
    emit(args, "", "cycle_p50_ms", quantile(lat, 0.5))
    emit(args, "", "cycle_p99_ms", quantile(lat, 0.99))
    print("redis-py Lock: %.0f cycles/s (p50 %.3f ms, p99 %.3f ms)"
          % (rate, quantile(lat, 0.5), quantile(lat, 0.99)), file=sys.stderr)


def worker(url, key, start, end, out):
    r = redis.Redis.from_url(url)
    r.ping()
    lock = r.lock(key, timeout=LOCK_TIMEOUT_S)
    time.sleep(max(0.0, start - time.monotonic()))
    count, max_wait, waits = 0, 0.0, []
    while True:
        t0 = time.monotonic()
        if t0 >= end:
            break
        ok = lock.acquire(blocking=True, blocking_timeout=end - t0)
        t1 = time.monotonic()
        max_wait = max(max_wait, t1 - t0)
        if not ok:
            continue
        lock.release()
        if t1 >= end or time.monotonic() > end:
            break
        waits.append(t1 - t0)
        count += 1
    out.put((count, max_wait, waits))


def contend(args):
    key = "bench-redis-py-contend-%d" % os.getpid()
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    start = time.monotonic() + 0.5
    end = start + args.seconds
    procs = [ctx.Process(target=worker, args=(args.url, key, start, end, out))
             for _ in range(args.procs)]
    for p in procs:
        p.start()
    results = [out.get(timeout=args.seconds + 60) for _ in procs]
    for p in procs:
        p.join()
    total = sum(c for c, _, _ in results)
    config = "p%d-k1" % args.procs
    shares = [c / total if total else 0.0 for c, _, _ in results]
    waits = [w for _, _, ws in results for w in ws]
    longest = max(m for _, m, _ in results)
    for i, s in enumerate(shares):
        emit(args, config, "share_w%d" % i, s)
    emit(args, config, "cs_per_s", total / args.seconds)
    emit(args, config, "share_min", min(shares))
    emit(args, config, "share_max", max(shares))
    emit(args, config, "workers_starved", sum(1 for c, _, _ in results if c == 0))
    emit(args, config, "longest_wait_ms", longest * 1000)
    emit(args, config, "wait_p50_ms", quantile(waits, 0.5) * 1000)
    emit(args, config, "wait_p99_ms", quantile(waits, 0.99) * 1000)
    print("redis-py Lock %s: %.0f critical sections/s; shares %.2f-%.2f; longest wait %.0f ms"
          % (config, total / args.seconds, min(shares), max(shares), longest * 1000),
          file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["cycle", "contend"])
    ap.add_argument("url")
    ap.add_argument("seconds", type=float)
    ap.add_argument("procs", type=int, nargs="?", default=4)
    ap.add_argument("--csv")
    ap.add_argument("--rep", type=int, default=1)
    args = ap.parse_args()
    if args.mode == "cycle":
        cycle(args)
    else:
        contend(args)


if __name__ == "__main__":
    main()

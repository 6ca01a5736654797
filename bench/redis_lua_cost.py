#!/usr/bin/python3
"""redis_lua_cost.py -- where the server time of tasklock's Redis scripts goes.

    redis_lua_cost.py URL HEADER [--csv FILE]

URL: a redis:// URL of a scratch database (keys under "tl-lua-cost:" are written and deleted).
HEADER: src/stores/redis_scripts.h, whose TL_REDIS_LUA_PRELUDE is measured as tasklock runs it.

Server time from INFO commandstats (the EVALSHA row's usec per call, after CONFIG RESETSTAT):
  return1       an EVALSHA of `return 1`: what Redis spends on any script call
  return1_args  the same, given a claim's 3 keys and 9 arguments (Redis builds KEYS and ARGV)
  prelude       the prelude (its helper functions and tables, defined on every call) + return 1
and, in a loop of LOOP iterations inside one script (warm: the interpreter's cost per piece):
  read_free     read() of a free key: HMGET of the 8 fields, then EXISTS, and the field loop
  read_held     read() of a held key: HMGET, the checks and the number parsing of every field
  time          now_us(): TIME and its conversion to a number
  note          note(): the audit trail's XADD, with the number formatting of its arguments
Rows go to the CSV in bench_common.h's long format: rep,store,subject,config,metric,value, with
subject "lua-cost" and metrics <name>_usec (the medians of REPS measurements).
"""
import argparse
import ast
import re
import statistics
import sys

import redis

CALLS = 3000  # EVALSHA calls per measurement of return1 and prelude
LOOP = 2000  # iterations per looped measurement
REPS = 5
PREFIX = "tl-lua-cost:"


def prelude_of(header):
    """The Lua text of the TL_REDIS_LUA_PRELUDE macro (C string literals, concatenated)."""
    text = open(header, encoding="utf-8").read()
    m = re.search(r"#define TL_REDIS_LUA_PRELUDE(.*?)\n\n", text, re.S)
    if m is None:
        sys.exit("redis_lua_cost: no TL_REDIS_LUA_PRELUDE in %s" % header)
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1))
    return "".join(ast.literal_eval('"%s"' % p) for p in parts)


def evalsha_usec(r, sha, keys, args, calls):
    r.config_resetstat()
    for _ in range(calls):
        r.evalsha(sha, len(keys), *keys, *args)
    stats = r.info("commandstats").get("cmdstat_evalsha")
    if not stats or stats["calls"] < calls:
        sys.exit("redis_lua_cost: INFO commandstats has no EVALSHA count; CONFIG RESETSTAT denied?")
    return stats["usec"] / stats["calls"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("header")
    ap.add_argument("--csv")
    a = ap.parse_args()

    r = redis.Redis.from_url(a.url)
    prelude = prelude_of(a.header)
    rec, hist = PREFIX + "lock:k", PREFIX + "history"
    keys = [rec, hist]
    held = {"worker_id": "w", "node_id": "n", "token": "1800000000000000",
            "claimed_at": "1800000000000", "heartbeat_at": "1800000000000",
            "lock_timeout_ms": "300000", "task_info": "{}", "nonce": "0123456789abcdef"}

    def looped(body):
        return prelude + "for i = 1, %d do\n%s\nend\nreturn 1\n" % (LOOP, body)

    claim_keys = [rec, PREFIX + "token:k", hist]
    claim_args = ["worker", "node", "{}", "300000", "normal", "0123456789abcdef", "86400000",
                  "1000", "k"]
    cases = [
        ("return1", "return 1\n", False, CALLS),
        ("return1_args", "return 1\n", False, CALLS),
        ("prelude", prelude + "return 1\n", False, CALLS),
        ("read_free", looped("local r, why = read(KEYS[1])"), False, 1),
        ("read_held", looped("local r, why = read(KEYS[1])\nif not r then return 0 end"), True, 1),
        ("time", looped("local us = now_us()"), False, 1),
        ("note", looped("note(KEYS[2], '1000', 1800000000000, 'acquired', 'k', 'w', 'n', "
                        "int(1800000000000000), '')"), False, 1),
    ]
    out = []
    try:
        for name, script, with_record, calls in cases:
            sha = r.script_load(script)
            r.delete(*keys)
            if with_record:
                r.hset(rec, mapping=held)
            per = []
            k, v = (claim_keys, claim_args) if name == "return1_args" else (keys, [])
            for _ in range(REPS):
                usec = evalsha_usec(r, sha, k, v, calls)
                per.append(usec if calls > 1 else usec / LOOP)
            out.append((name, statistics.median(per)))
    finally:
        r.delete(*claim_keys)
    for name, usec in out:
        print("%-12s %8.3f us" % (name, usec))
        if a.csv:
            with open(a.csv, "a", encoding="utf-8") as f:
                f.write("1,redis,lua-cost,,%s_usec,%.4g\n" % (name, usec))


if __name__ == "__main__":
    try:
        main()
    except (OSError, ValueError, redis.exceptions.RedisError) as e:
        # The URL is not repeated: it may carry a password.
        sys.exit("redis_lua_cost: %s: %s" % (type(e).__name__, e))

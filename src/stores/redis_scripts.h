/*
 * redis_scripts.h -- the Lua scripts of the Redis store (included by redis.c only).
 *
 * Each operation that reads and then writes is one script, so Redis runs it atomically. Every
 * script begins with the same prelude: a reader that checks a record field by field (garbage
 * in a key under our prefix gives a "TLBAD" error naming the key, never a Lua error), the
 * server clock (TIME; Redis 5 and later replicate a script's effects, so TIME before a write is
 * allowed), and the history appender.
 *
 * Numbers: Redis's Lua has only doubles, exact up to 2^53. Tokens and times stay far below
 * (a token is about the server time in microseconds, 1.8e15 in 2027); the reader refuses
 * anything larger, numbers are written with string.format('%d') (never as floats), and tokens
 * are compared as the decimal strings they were written as.
 *
 * A record is a hash at PREFIX lock:KEY with the fields of FIELDS below; the token counter is a
 * string at PREFIX token:KEY; the audit trail is a stream at PREFIX history.
 */
#ifndef TL_STORES_REDIS_SCRIPTS_H
#define TL_STORES_REDIS_SCRIPTS_H

#define TL_REDIS_LUA_PRELUDE                                                                      \
    "local FIELDS = {'worker_id', 'node_id', 'token', 'claimed_at', 'heartbeat_at',\n"            \
    "                'lock_timeout_ms', 'task_info', 'nonce'}\n"                                  \
    "local MAXNUM = 9007199254740991\n"                                                           \
    "local function int(n) return string.format('%d', n) end\n"                                   \
    "local function now_us()\n"                                                                   \
    "    local t = redis.call('TIME')\n"                                                          \
    "    return tonumber(t[1]) * 1000000 + tonumber(t[2])\n"                                      \
    "end\n"                                                                                       \
    "local function num(s)\n"                                                                     \
    "    if type(s) ~= 'string' or #s == 0 or #s > 16 or not string.find(s, '^%d+$') then\n"      \
    "        return nil\n"                                                                        \
    "    end\n"                                                                                   \
    "    local n = tonumber(s)\n"                                                                 \
    "    if n > MAXNUM then return nil end\n"                                                     \
    "    return n\n"                                                                              \
    "end\n"                                                                                       \
    "local function bad(k, why) return redis.error_reply('TLBAD ' .. k .. ': ' .. why) end\n"     \
    "-- The record at k: nil when the key is free; false and why when it holds something\n"       \
    "-- that is not a tasklock record.\n"                                                         \
    "local function read(k)\n"                                                                    \
    "    local v = redis.pcall('HMGET', k, unpack(FIELDS))\n"                                     \
    "    if v.err then return false, v.err end\n"                                                 \
    "    local r, missing = {}, 0\n"                                                              \
    "    for i, f in ipairs(FIELDS) do\n"                                                         \
    "        r[f] = v[i]\n"                                                                       \
    "        if not v[i] then missing = missing + 1 end\n"                                        \
    "    end\n"                                                                                   \
    "    if missing == #FIELDS then\n"                                                            \
    "        if redis.call('EXISTS', k) == 0 then return nil end\n"                               \
    "        return false, 'a hash without any tasklock field'\n"                                 \
    "    end\n"                                                                                   \
    "    for _, f in ipairs({'worker_id', 'node_id', 'task_info', 'nonce'}) do\n"                 \
    "        if not r[f] or #r[f] == 0 then\n"                                                    \
    "            return false, 'field ' .. f .. ' is missing or empty'\n"                         \
    "        end\n"                                                                               \
    "    end\n"                                                                                   \
    "    r.token_s = r.token\n"                                                                   \
    "    for _, f in ipairs({'token', 'claimed_at', 'heartbeat_at', 'lock_timeout_ms'}) do\n"     \
    "        r[f] = num(r[f])\n"                                                                  \
    "        if not r[f] then return false, 'field ' .. f .. ' is missing or not a number' end\n" \
    "    end\n"                                                                                   \
    "    return r\n"                                                                              \
    "end\n"                                                                                       \
    "local function record(r)\n"                                                                  \
    "    return {r.worker_id, r.node_id, r.token, r.claimed_at, r.heartbeat_at,\n"                \
    "            r.lock_timeout_ms, r.task_info}\n"                                               \
    "end\n"                                                                                       \
    "local function note(hist, max, at, event, key, worker, node, token, detail)\n"               \
    "    if max == '0' then return end\n"                                                         \
    "    redis.call('XADD', hist, 'MAXLEN', '~', max, '*', 'at', int(at), 'event', event,\n"      \
    "               'key', key, 'worker_id', worker, 'node_id', node, 'token', token,\n"          \
    "               'detail', detail)\n"                                                          \
    "end\n"

/*
 * claim. KEYS: record, counter, history. ARGV: worker, node, task_info, lock_timeout_ms, mode
 * (normal | steal | force), nonce, safety_ttl_ms, history_max, key.
 * Returns {status, now_ms, event, worker, node, token, claimed_at, heartbeat_at, timeout, task}
 * with status "won" (event: acquired | stolen | forced | replayed) or "busy" (the holder's
 * record). "replayed": this very claim (same nonce) had already won, its reply was lost.
 * The token is max(last token + 1, server time in microseconds): it grows even when the counter
 * is gone (expired, or wiped with the whole data set by a restart without persistence).
 */
static const char script_claim[] = TL_REDIS_LUA_PRELUDE
    "local worker, node, task, timeout, mode, nonce, ttl, hmax, key = unpack(ARGV)\n"
    "local us = now_us()\n"
    "local now = math.floor(us / 1000)\n"
    "local r, why = read(KEYS[1])\n"
    "local event, detail = 'acquired', ''\n"
    "if r == false then\n"
    "    if mode ~= 'force' then return bad(KEYS[1], why) end\n"
    "    event, detail = 'forced', 'over an unreadable record (' .. why .. ')'\n"
    "    redis.call('DEL', KEYS[1])\n"
    "elseif r then\n"
    "    if r.nonce == nonce and r.worker_id == worker then\n"
    "        return {'won', now, 'replayed', unpack(record(r))}\n"
    "    end\n"
    "    local stale = now - r.heartbeat_at > r.lock_timeout_ms\n"
    "    if stale and mode ~= 'normal' then\n"
    "        event = 'stolen'\n"
    "    elseif mode == 'force' then\n"
    "        event = 'forced'\n"
    "    else\n"
    "        return {'busy', now, '', unpack(record(r))}\n"
    "    end\n"
    "    detail = 'from ' .. r.worker_id .. ' (token ' .. r.token_s .. ')'\n"
    "end\n"
    "local last = 0\n"
    "local c = redis.pcall('GET', KEYS[2])\n"
    "if type(c) == 'table' then\n"
    "    if mode ~= 'force' then return bad(KEYS[2], tostring(c.err)) end\n"
    "elseif c then\n"
    "    last = num(c)\n"
    "    if not last then\n"
    "        if mode ~= 'force' then return bad(KEYS[2], 'not a token counter') end\n"
    "        last = 0\n"
    "    end\n"
    "end\n"
    "local token = last + 1\n"
    "if token < us then token = us end\n"
    "if token > MAXNUM then return bad(KEYS[2], 'the token counter is exhausted') end\n"
    "local life = tonumber(ttl) + tonumber(timeout)\n"
    "redis.call('SET', KEYS[2], int(token), 'PX', life)\n"
    "redis.call('HSET', KEYS[1], 'worker_id', worker, 'node_id', node, 'token', int(token),\n"
    "           'claimed_at', int(now), 'heartbeat_at', int(now), 'lock_timeout_ms', timeout,\n"
    "           'task_info', task, 'nonce', nonce)\n"
    "redis.call('PEXPIRE', KEYS[1], life)\n"
    "note(KEYS[3], hmax, now, event, key, worker, node, int(token), detail)\n"
    "return {'won', now, event, worker, node, token, now, now, tonumber(timeout), task}\n";

/*
 * renew. KEYS: record, counter, history. ARGV: worker, node, token, safety_ttl_ms,
 * history_max, key. Returns {"ok", now_ms} or {"lost", now_ms[, holder's record...]}.
 */
static const char script_renew[] = TL_REDIS_LUA_PRELUDE
    "local worker, node, token, ttl, hmax, key = unpack(ARGV)\n"
    "local now = math.floor(now_us() / 1000)\n"
    "local r, why = read(KEYS[1])\n"
    "if r == false then return bad(KEYS[1], why) end\n"
    "if not r or r.worker_id ~= worker or r.token_s ~= token then\n"
    "    local detail = 'the key is free'\n"
    "    if r then detail = 'now held by ' .. r.worker_id .. ' (token ' .. r.token_s .. ')' end\n"
    "    note(KEYS[3], hmax, now, 'lost', key, worker, node, token, detail)\n"
    "    if r then return {'lost', now, unpack(record(r))} end\n"
    "    return {'lost', now}\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'heartbeat_at', int(now))\n"
    "local life = tonumber(ttl) + r.lock_timeout_ms\n"
    "redis.call('PEXPIRE', KEYS[1], life)\n"
    "redis.call('PEXPIRE', KEYS[2], life)\n"
    "return {'ok', now}\n";

/*
 * release. KEYS: record, counter, history. ARGV: worker, node, token, summary, safety_ttl_ms,
 * history_max, key, channel. Returns {"released"}, {"already"} (free, and our token is still
 * the last one), {"held", holder's record...}, {"since", last token} or {"never"}.
 * The PUBLISH wakes waiters; it is a pcall so that a user without channel rights can still
 * release (its waiters then sleep out their backoff).
 */
static const char script_release[] = TL_REDIS_LUA_PRELUDE
    "local worker, node, token, summary, ttl, hmax, key, chan = unpack(ARGV)\n"
    "local r, why = read(KEYS[1])\n"
    "if r == false then return bad(KEYS[1], why) end\n"
    "if r and r.worker_id == worker and r.token_s == token then\n"
    "    local now = math.floor(now_us() / 1000)\n"
    "    redis.call('DEL', KEYS[1])\n"
    "    redis.call('PEXPIRE', KEYS[2], ttl)\n"
    "    note(KEYS[3], hmax, now, 'released', key, worker, node, token, summary)\n"
    "    redis.pcall('PUBLISH', chan, token)\n"
    "    return {'released'}\n"
    "end\n"
    "if r then return {'held', unpack(record(r))} end\n"
    "local c = redis.pcall('GET', KEYS[2])\n"
    "if c == token then return {'already'} end\n"
    "if type(c) == 'string' then return {'since', c} end\n"
    "return {'never'}\n";

/*
 * force_release. KEYS: record, counter, history. ARGV: worker, node, token (0: any holder),
 * summary, safety_ttl_ms, history_max, key, channel. Returns {"free"}, {"other", now_ms,
 * holder's record...} (held with another token), {"released", now_ms, new token, holder's
 * record...} or {"cleared", now_ms, new token, why} (an unreadable record, deleted). Like a forced
 * claim and its release at once: a new token, larger than the holder's, kept in the counter (so
 * the holder's release is refused, not taken for a retry), and "forced" and "released" events of
 * the worker that broke the lock.
 */
static const char script_force_release[] = TL_REDIS_LUA_PRELUDE
    "local worker, node, want, summary, ttl, hmax, key, chan = unpack(ARGV)\n"
    "local us = now_us()\n"
    "local now = math.floor(us / 1000)\n"
    "local r, why = read(KEYS[1])\n"
    "if r == nil then return {'free'} end\n"
    "if r == false and want ~= '0' then return bad(KEYS[1], why) end\n"
    "if r and want ~= '0' and r.token_s ~= want then\n"
    "    return {'other', now, unpack(record(r))}\n"
    "end\n"
    "local last = 0\n"
    "local c = redis.pcall('GET', KEYS[2])\n"
    "if type(c) == 'string' then last = num(c) or 0 end\n"
    "if r and r.token > last then last = r.token end\n"
    "local token = last + 1\n"
    "if token < us then token = us end\n"
    "if token > MAXNUM then return bad(KEYS[2], 'the token counter is exhausted') end\n"
    "redis.call('DEL', KEYS[1])\n"
    "redis.call('SET', KEYS[2], int(token), 'PX', ttl)\n"
    "local detail = 'over an unreadable record (' .. tostring(why) .. ')'\n"
    "if r then detail = 'from ' .. r.worker_id .. ' (token ' .. r.token_s .. ')' end\n"
    "note(KEYS[3], hmax, now, 'forced', key, worker, node, int(token), detail)\n"
    "note(KEYS[3], hmax, now, 'released', key, worker, node, int(token), summary)\n"
    "redis.pcall('PUBLISH', chan, int(token))\n"
    "if r then return {'released', now, token, unpack(record(r))} end\n"
    "return {'cleared', now, token, tostring(why)}\n";

/* inspect. KEYS: record. Returns {now_ms} when free, else {now_ms, record...}. */
static const char script_inspect[] =
    TL_REDIS_LUA_PRELUDE "local now = math.floor(now_us() / 1000)\n"
                         "local r, why = read(KEYS[1])\n"
                         "if r == false then return bad(KEYS[1], why) end\n"
                         "if not r then return {now} end\n"
                         "return {now, unpack(record(r))}\n";

/* read_many (for list). KEYS: records. Returns {now_ms, record or 0 (gone since SCAN), ...}. */
static const char script_read_many[] =
    TL_REDIS_LUA_PRELUDE "local out = {math.floor(now_us() / 1000)}\n"
                         "for _, k in ipairs(KEYS) do\n"
                         "    local r, why = read(k)\n"
                         "    if r == false then return bad(k, why) end\n"
                         "    if r then out[#out + 1] = record(r) else out[#out + 1] = 0 end\n"
                         "end\n"
                         "return out\n";

#endif /* TL_STORES_REDIS_SCRIPTS_H */

/*
 * redis_scripts.h -- the Lua scripts of the Redis store (included by redis.c only).
 *
 * Each operation that reads and then writes is one script, so Redis runs it atomically. Every
 * script is made of parts that redis.c joins when it loads the script (one C string each, as ISO
 * C limits a string's length): the same prelude, the line's helpers for the scripts that touch
 * a key's line, then its own text. The prelude holds a reader that checks a record field by field
 * (garbage in a key under our prefix gives a "TLBAD" error naming the key, never a Lua error), the
 * server clock (TIME; Redis 5 and later replicate a script's effects, so TIME before a write is
 * allowed), and the history appender.
 *
 * Numbers: Redis's Lua has only doubles, exact up to 2^53. Tokens and times stay far below
 * (a token is about the server time in microseconds, 1.8e15 in 2027); the reader refuses
 * anything larger, numbers are written with string.format('%d') (never as floats), and tokens
 * are compared as the decimal strings they were written as.
 *
 * A record is a hash at PREFIX lock:KEY with the fields of FIELDS below (shared holders add a
 * field each: redis_holders_scripts.h); the token counter is a string at PREFIX token:KEY; the
 * audit trail is a stream at PREFIX history.
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
 * The line of a key (version 3): PREFIX line:KEY is a sorted set of waiter ids whose score
 * encodes the order, (1000 - priority) * 2^40 + seq (priority first, then arrival; below 2^53,
 * so exact in a double); PREFIX waiters:KEY is a hash from waiter id to the waiter's fields,
 * "seq\npriority\nsince\nheartbeat_at\ntimeout_ms\nworker_id\nnode_id" (ids never hold a
 * newline), and, for a waiter whose claim is shared (version 5), from "m:" WAITER_ID to its
 * slots (no such field: exclusive; older versions never read it); PREFIX lineseq:KEY counts
 * seqs. A wake-up is an element in the list
 * PREFIX wake:KEY:WAITER_ID (at most one, expiring), popped by the waiter's BLPOP.
 * A waiter whose fields cannot be read is treated as dead.
 */
#define TL_REDIS_LUA_LINE                                                                          \
    "local P40 = 1099511627776\n"                                                                  \
    "local function wparse(v)\n"                                                                   \
    "    if type(v) ~= 'string' then return nil end\n"                                             \
    "    local p = {}\n"                                                                           \
    "    for f in string.gmatch(v .. '\\n', '([^\\n]*)\\n') do p[#p + 1] = f end\n"                \
    "    if #p ~= 7 or #p[6] == 0 or #p[7] == 0 then return nil end\n"                             \
    "    if not string.find(p[2], '^%-?%d%d?%d?%d?$') then return nil end\n"                       \
    "    local w = {seq = num(p[1]), prio = tonumber(p[2]), since = num(p[3]), beat = "            \
    "num(p[4]),\n"                                                                                 \
    "               timeout = num(p[5]), worker = p[6], node = p[7]}\n"                            \
    "    if not w.seq or not w.since or not w.beat or not w.timeout then return nil end\n"         \
    "    if w.prio < -1000 or w.prio > 1000 then return nil end\n"                                 \
    "    return w\n"                                                                               \
    "end\n"                                                                                        \
    "local function wtext(w)\n"                                                                    \
    "    return int(w.seq) .. '\\n' .. int(w.prio) .. '\\n' .. int(w.since) .. '\\n' ..\n"         \
    "           int(w.beat) .. '\\n' .. int(w.timeout) .. '\\n' .. w.worker .. '\\n' .. w.node\n"  \
    "end\n"                                                                                        \
    "-- The line in order: a list of {id, w (nil: unreadable), live}; or nil and an error reply\n" \
    "-- when the line's keys hold something else.\n"                                               \
    "local function line_read(lk, wk, now)\n"                                                      \
    "    local ids = redis.pcall('ZRANGE', lk, 0, -1)\n"                                           \
    "    if ids.err then return nil, bad(lk, ids.err) end\n"                                       \
    "    local out, i = {}, 1\n"                                                                   \
    "    while i <= #ids do\n"                                                                     \
    "        local j = math.min(i + 999, #ids)\n"                                                  \
    "        local vals = redis.pcall('HMGET', wk, unpack(ids, i, j))\n"                           \
    "        if vals.err then return nil, bad(wk, vals.err) end\n"                                 \
    "        for n = i, j do\n"                                                                    \
    "            local w = wparse(vals[n - i + 1])\n"                                              \
    "            out[#out + 1] = {id = ids[n], w = w, live = w ~= nil and now - w.beat < "         \
    "w.timeout}\n"                                                                                 \
    "        end\n"                                                                                \
    "        i = j + 1\n"                                                                          \
    "    end\n"                                                                                    \
    "    return out\n"                                                                             \
    "end\n"                                                                                        \
    "local function line_drop(lk, wk, wp, id)\n"                                                   \
    "    redis.pcall('ZREM', lk, id)\n"                                                            \
    "    redis.pcall('HDEL', wk, id, 'm:' .. id, 'u:' .. id, 'g:' .. id)\n"                        \
    "    redis.call('DEL', wp .. id)\n"                                                            \
    "end\n"                                                                                        \
    "-- Deletes the entries of a read line that are not live; returns the live ones in order "     \
    "and\n"                                                                                        \
    "-- whether a deleted one stood before the first live one (the head may not know it is).\n"    \
    "local function line_prune(line, lk, wk, wp)\n"                                                \
    "    local live, front = {}, false\n"                                                          \
    "    for _, e in ipairs(line) do\n"                                                            \
    "        if e.live then\n"                                                                     \
    "            live[#live + 1] = e\n"                                                            \
    "        else\n"                                                                               \
    "            line_drop(lk, wk, wp, e.id)\n"                                                    \
    "            if #live == 0 then front = true end\n"                                            \
    "        end\n"                                                                                \
    "    end\n"                                                                                    \
    "    return live, front\n"                                                                     \
    "end\n"                                                                                        \
    "-- Wakes waiter e: one element in its list, kept a minute past its timeout at most.\n"        \
    "local function wake(wp, e)\n"                                                                 \
    "    local k = wp .. e.id\n"                                                                   \
    "    if redis.pcall('LLEN', k) == 0 then redis.pcall('RPUSH', k, '1') end\n"                   \
    "    redis.pcall('PEXPIRE', k, e.w.timeout + 60000)\n"                                         \
    "end\n"                                                                                        \
    "-- Wakes the head of the line of a key just freed (dead waiters in front deleted).\n"         \
    "local function wake_head(lk, wk, wp, now)\n"                                                  \
    "    local line = line_read(lk, wk, now)\n"                                                    \
    "    if not line then return end\n"                                                            \
    "    local live = line_prune(line, lk, wk, wp)\n"                                              \
    "    if #live > 0 then wake(wp, live[1]) end\n"                                                \
    "end\n"                                                                                        \
    "local function count_live(lk, wk, now)\n"                                                     \
    "    local line = line_read(lk, wk, now)\n"                                                    \
    "    local n = 0\n"                                                                            \
    "    for _, e in ipairs(line or {}) do if e.live then n = n + 1 end end\n"                     \
    "    return n\n"                                                                               \
    "end\n"

/*
 * leave. KEYS: record, line, waiters, the set of lines (redis_convert_scripts.h). ARGV: waiter
 * id, wake-up key prefix, channel, key. Deletes the waiter (and its wake-ups) and the dead
 * waiters met, and the key from the set of lines when its line is empty; when that changed who
 * heads the line and the key's holders would admit the new head's claim, wakes it; when it leaves a
 * free key's line empty, publishes on the key's release channel (a waiting claim-next may take the
 * key now). Returns {"ok"}.
 */
static const char script_leave[] =
    "local wid, wp, chan, key = unpack(ARGV)\n"
    "local now = math.floor(now_us() / 1000)\n"
    "local hs = hread(KEYS[1])\n"
    "local line = line_read(KEYS[2], KEYS[3], now)\n"
    "if line then\n"
    "    for _, e in ipairs(line) do\n"
    "        if e.id == wid then e.live = false end\n"
    "    end\n"
    "    local live, front = line_prune(line, KEYS[2], KEYS[3], wp)\n"
    "    if hs and front then hwake(KEYS[3], wp, live, hs) end\n"
    "    if hs and #hs == 0 and #live == 0 and #line > 0 and chan then\n"
    "        redis.pcall('PUBLISH', chan, '0')\n"
    "    end\n"
    "end\n"
    "line_drop(KEYS[2], KEYS[3], wp, wid)\n"
    "lines_gone(KEYS[4], key, KEYS[2])\n"
    "return {'ok'}\n";

/* The parts the scripts begin with (each string stays within the 4095 bytes of ISO C). */
static const char lua_prelude[] = TL_REDIS_LUA_PRELUDE;
static const char lua_line[] = TL_REDIS_LUA_LINE;

#endif /* TL_STORES_REDIS_SCRIPTS_H */

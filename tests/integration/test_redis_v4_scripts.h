/*
 * test_redis_v4_scripts.h -- a frozen copy of src/stores/redis_scripts.h as tasklock shipped it
 * before shared holders (store contract version 4, commit dbdb327), for test_redis_modes.c: it
 * runs these scripts as an older tasklock on the same server would. Never update it to follow
 * the store; only the lines up to here differ from that commit's file.
 *
 * The original comment follows.
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
 * A record is a hash at PREFIX lock:KEY with the fields of FIELDS below; the token counter is a
 * string at PREFIX token:KEY; the audit trail is a stream at PREFIX history.
 */
#ifndef TL_TEST_REDIS_V4_SCRIPTS_H
#define TL_TEST_REDIS_V4_SCRIPTS_H

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
 * newline); PREFIX lineseq:KEY counts seqs. A wake-up is an element in the list
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
    "    redis.pcall('HDEL', wk, id)\n"                                                            \
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
 * claim. KEYS: record, counter, history, line, waiters, line's seq counter. ARGV: worker, node,
 * task_info, lock_timeout_ms, mode (normal | steal | force), nonce, safety_ttl_ms, history_max,
 * key, waiter id ('' for none), priority, waiter timeout_ms, wake-up key prefix.
 * Returns {status, now_ms, event, worker, node, token, claimed_at, heartbeat_at, timeout, task,
 * waiting, ahead} with status "won" (event: acquired | stolen | forced | replayed) or "busy"
 * (the holder's record), or {"line", now_ms, waiting, ahead}: the key is free but live waiters
 * are ahead. "replayed": this very claim (same nonce) had already won, its reply was lost.
 * The token is max(last token + 1, server time in microseconds): it grows even when the counter
 * is gone (expired, or wiped with the whole data set by a restart without persistence).
 * A waiter that does not win joins the line (or refreshes its heartbeat there); one that wins
 * leaves it. Dead waiters met on the way are deleted, and when that leaves a new head in front
 * of a free key, that head is woken.
 */
static const char script_claim[] =
    "local worker, node, task, timeout, mode, nonce, ttl, hmax, key, wid, prio, wtimeout, wp =\n"
    "    unpack(ARGV)\n"
    "prio, wtimeout = tonumber(prio), tonumber(wtimeout)\n"
    "local lk, wk, sk = KEYS[4], KEYS[5], KEYS[6]\n"
    "local us = now_us()\n"
    "local now = math.floor(us / 1000)\n"
    "local r, why = read(KEYS[1])\n"
    "if r and r.nonce == nonce and r.worker_id == worker then\n"
    "    local out = {'won', now, 'replayed', unpack(record(r))}\n"
    "    out[11], out[12] = 0, 0\n"
    "    return out\n"
    "end\n"
    "if r == false and mode ~= 'force' then return bad(KEYS[1], why) end\n"
    "local line, lerr = line_read(lk, wk, now)\n"
    "if not line then\n"
    "    if mode ~= 'force' then return lerr end\n"
    "    line = {}\n"
    "end\n"
    "local live, front = line_prune(line, lk, wk, wp)\n"
    "local mine, ahead = nil, 0\n"
    "for i, e in ipairs(live) do\n"
    "    if e.id == wid then mine = i end\n"
    "end\n"
    "if mine then\n"
    "    ahead = mine - 1\n"
    "elseif wid ~= '' then\n"
    "    for _, e in ipairs(live) do\n"
    "        if e.w.prio >= prio then ahead = ahead + 1 end\n"
    "    end\n"
    "else\n"
    "    ahead = #live\n"
    "end\n"
    "local stale = r and now - r.heartbeat_at > r.lock_timeout_ms\n"
    "if mode ~= 'force' and (ahead > 0 or (r and not (stale and mode == 'steal'))) then\n"
    "    local waiting = #live\n"
    "    if wid ~= '' then\n"
    "        if mine then\n"
    "            local w = live[mine].w\n"
    "            w.beat, w.timeout = now, wtimeout\n"
    "            redis.call('HSET', wk, wid, wtext(w))\n"
    "        else\n"
    "            local seq = redis.pcall('INCR', sk)\n"
    "            if type(seq) ~= 'number' then\n"
    "                redis.call('DEL', sk)\n"
    "                seq = redis.call('INCR', sk)\n"
    "            end\n"
    "            local top = 0\n"
    "            for _, e in ipairs(live) do\n"
    "                if e.w.seq > top then top = e.w.seq end\n"
    "            end\n"
    "            if seq <= top then\n"
    "                seq = top + 1\n"
    "                redis.call('SET', sk, int(seq))\n"
    "            end\n"
    "            if seq >= P40 then return bad(sk, 'the seq counter is exhausted') end\n"
    "            local w = {seq = seq, prio = prio, since = now, beat = now, timeout = wtimeout,\n"
    "                       worker = worker, node = node}\n"
    "            redis.call('ZADD', lk, int((1000 - prio) * P40 + seq), wid)\n"
    "            redis.call('HSET', wk, wid, wtext(w))\n"
    "            waiting = waiting + 1\n"
    "        end\n"
    "        local life = tonumber(ttl) + wtimeout\n"
    "        for _, k in ipairs({lk, wk, sk}) do\n"
    "            if redis.call('PTTL', k) < life then redis.call('PEXPIRE', k, life) end\n"
    "        end\n"
    "        -- A wake-up sent before this answer is answered by it.\n"
    "        redis.call('DEL', wp .. wid)\n"
    "    end\n"
    "    if not r then\n"
    "        if front and #live > 0 and live[1].id ~= wid then wake(wp, live[1]) end\n"
    "        return {'line', now, waiting, ahead}\n"
    "    end\n"
    "    local out = {'busy', now, '', unpack(record(r))}\n"
    "    out[11], out[12] = waiting, ahead\n"
    "    return out\n"
    "end\n";
/* claim, continued: the win. */
static const char script_claim_win[] =
    "local event, detail = 'acquired', ''\n"
    "if r == false then\n"
    "    event, detail = 'forced', 'over an unreadable record (' .. why .. ')'\n"
    "    redis.call('DEL', KEYS[1])\n"
    "elseif r then\n"
    "    if stale and mode ~= 'normal' then event = 'stolen' else event = 'forced' end\n"
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
    "if wid ~= '' then line_drop(lk, wk, wp, wid) end\n"
    "note(KEYS[3], hmax, now, event, key, worker, node, int(token), detail)\n"
    "return {'won', now, event, worker, node, token, now, now, tonumber(timeout), task, 0, 0}\n";

/*
 * renew, and extend. KEYS: record, counter, history. ARGV: worker, node, token, safety_ttl_ms,
 * history_max, key, new lock_timeout_ms ('' for a renew). Returns {"ok", now_ms} or {"lost",
 * now_ms[, holder's record...]}.
 */
static const char script_renew[] =
    "local worker, node, token, ttl, hmax, key, extend = unpack(ARGV)\n"
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
    "if extend and extend ~= '' then\n"
    "    redis.call('HSET', KEYS[1], 'lock_timeout_ms', extend)\n"
    "    r.lock_timeout_ms = tonumber(extend)\n"
    "end\n"
    "local life = tonumber(ttl) + r.lock_timeout_ms\n"
    "redis.call('PEXPIRE', KEYS[1], life)\n"
    "redis.call('PEXPIRE', KEYS[2], life)\n"
    "return {'ok', now}\n";

/*
 * release. KEYS: record, counter, history, line, waiters. ARGV: worker, node, token, summary,
 * safety_ttl_ms, history_max, key, channel, wake-up key prefix. Returns {"released"}, {"already"}
 * (free, and our token is still the last one), {"held", holder's record...}, {"since", last token}
 * or {"never"}. The PUBLISH wakes waiters outside the line; it is a pcall so that a user without
 * channel rights can still release (its waiters then sleep out their backoff). The head of the
 * line, if any, is woken through its own list.
 */
static const char script_release[] =
    "local worker, node, token, summary, ttl, hmax, key, chan, wp = unpack(ARGV)\n"
    "local r, why = read(KEYS[1])\n"
    "if r == false then return bad(KEYS[1], why) end\n"
    "if r and r.worker_id == worker and r.token_s == token then\n"
    "    local now = math.floor(now_us() / 1000)\n"
    "    redis.call('DEL', KEYS[1])\n"
    "    redis.call('PEXPIRE', KEYS[2], ttl)\n"
    "    note(KEYS[3], hmax, now, 'released', key, worker, node, token, summary)\n"
    "    redis.pcall('PUBLISH', chan, token)\n"
    "    wake_head(KEYS[4], KEYS[5], wp, now)\n"
    "    return {'released'}\n"
    "end\n"
    "if r then return {'held', unpack(record(r))} end\n"
    "local c = redis.pcall('GET', KEYS[2])\n"
    "if c == token then return {'already'} end\n"
    "if type(c) == 'string' then return {'since', c} end\n"
    "return {'never'}\n";

/*
 * force_release. KEYS: record, counter, history, line, waiters. ARGV: worker, node, token (0: any
 * holder), summary, safety_ttl_ms, history_max, key, channel, wake-up key prefix. Returns {"free"},
 * {"other", now_ms, holder's record...} (held with another token), {"released", now_ms, new token,
 * holder's record...} or {"cleared", now_ms, new token, why} (an unreadable record, deleted). Like
 * a forced claim and its release at once: a new token, larger than the holder's, kept in the
 * counter (so the holder's release is refused, not taken for a retry), and "forced" and "released"
 * events of the worker that broke the lock.
 */
static const char script_force_release[] =
    "local worker, node, want, summary, ttl, hmax, key, chan, wp = unpack(ARGV)\n"
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
    "wake_head(KEYS[4], KEYS[5], wp, now)\n"
    "if r then return {'released', now, token, unpack(record(r))} end\n"
    "return {'cleared', now, token, tostring(why)}\n";

/* inspect. KEYS: record, line, waiters. Returns {now_ms, waiting} when free, else {now_ms,
 * waiting, record...}; waiting counts the live waiters. */
static const char script_inspect[] = "local now = math.floor(now_us() / 1000)\n"
                                     "local r, why = read(KEYS[1])\n"
                                     "if r == false then return bad(KEYS[1], why) end\n"
                                     "local waiting = count_live(KEYS[2], KEYS[3], now)\n"
                                     "if not r then return {now, waiting} end\n"
                                     "return {now, waiting, unpack(record(r))}\n";

/* read_many (for list). KEYS: records. ARGV: the key prefix. Returns {now_ms, record and its
 * live waiters' count, or 0 (gone since SCAN), ...}. */
static const char script_read_many[] =
    "local prefix = ARGV[1]\n"
    "local out = {math.floor(now_us() / 1000)}\n"
    "for _, k in ipairs(KEYS) do\n"
    "    local r, why = read(k)\n"
    "    if r == false then return bad(k, why) end\n"
    "    if r then\n"
    "        local e, name = record(r), string.sub(k, #prefix + 6)\n"
    "        e[8] = count_live(prefix .. 'line:' .. name, prefix .. 'waiters:' .. name, out[1])\n"
    "        out[#out + 1] = e\n"
    "    else\n"
    "        out[#out + 1] = 0\n"
    "    end\n"
    "end\n"
    "return out\n";

/*
 * leave. KEYS: record, line, waiters. ARGV: waiter id, wake-up key prefix, channel. Deletes the
 * waiter (and its wake-ups) and the dead waiters met; when the key is free and that changed who
 * heads the line, wakes the new head; when it leaves a free key's line empty, publishes on the
 * key's release channel (a waiting claim-next may take the key now). Returns {"ok"}.
 */
static const char script_leave[] =
    "local wid, wp, chan = unpack(ARGV)\n"
    "local now = math.floor(now_us() / 1000)\n"
    "local r = read(KEYS[1])\n"
    "local line = line_read(KEYS[2], KEYS[3], now)\n"
    "if line then\n"
    "    for _, e in ipairs(line) do\n"
    "        if e.id == wid then e.live = false end\n"
    "    end\n"
    "    local live, front = line_prune(line, KEYS[2], KEYS[3], wp)\n"
    "    if r == nil and front and #live > 0 then wake(wp, live[1]) end\n"
    "    if r == nil and #live == 0 and #line > 0 and chan then\n"
    "        redis.pcall('PUBLISH', chan, '0')\n"
    "    end\n"
    "end\n"
    "line_drop(KEYS[2], KEYS[3], wp, wid)\n"
    "return {'ok'}\n";

/*
 * waiters. KEYS: line, waiters. Returns {now_ms, {waiter id, worker, node, priority, seq,
 * since, heartbeat_at, timeout_ms, live (1 or 0)}, ...} in the line's order; entries whose
 * fields cannot be read are left out. Reads only.
 */
static const char script_waiters[] =
    "local now = math.floor(now_us() / 1000)\n"
    "local line, err = line_read(KEYS[1], KEYS[2], now)\n"
    "if not line then return err end\n"
    "local out = {now}\n"
    "for _, e in ipairs(line) do\n"
    "    local w = e.w\n"
    "    if w then\n"
    "        out[#out + 1] = {e.id, w.worker, w.node, w.prio, w.seq, w.since, w.beat, w.timeout,\n"
    "                         e.live and 1 or 0}\n"
    "    end\n"
    "end\n"
    "return out\n";

/* The parts the scripts begin with (each string stays within the 4095 bytes of ISO C). */
static const char lua_prelude[] = TL_REDIS_LUA_PRELUDE;
static const char lua_line[] = TL_REDIS_LUA_LINE;

#endif /* TL_TEST_REDIS_V4_SCRIPTS_H */

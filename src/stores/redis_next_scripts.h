/*
 * redis_next_scripts.h -- the Lua scripts of claim-next and done markers (store.h version 4),
 * included by redis.c only (its script table), after redis_scripts.h's prelude and line parts,
 * which these scripts begin with.
 *
 * A done marker is a hash at PREFIX done:KEY {worker_id, node_id, token, done_at, summary},
 * without a TTL: it lasts until a reopen (or a later done release replaces it). Older versions
 * never look at it, and a plain claim ignores it (a lock is a lock).
 *
 * The candidates' Redis keys are built inside the scripts from the prefix and each candidate's
 * name (as read_many does), so a claim-next's arguments are the names alone: one script call
 * whatever the number of candidates, but keys the script does not declare. Fine on one Redis
 * server; a Cluster would refuse them (CROSSSLOT), which is one reason the store is
 * single-node (docs/redis.md).
 */
#ifndef TL_STORES_REDIS_NEXT_SCRIPTS_H
#define TL_STORES_REDIS_NEXT_SCRIPTS_H

/*
 * The claim-next walk, shared by the claim_next and finish scripts. `a` is ARGV: 1 prefix,
 * 2 safety_ttl_ms, 3 history_max, 4..11 worker, node, task_info, lock_timeout_ms, mode (normal |
 * steal), nonce, replay (1: first look for a record of this nonce: the call is a resend whose
 * first sending may have won), probe (1: only say whether one is free; write nothing); the
 * candidates' names from index `first`. Returns {"won", now_ms, event, index, token} (event:
 * acquired | stolen), {"won", now_ms, "replayed", index, record...}, {"free", now_ms, index}
 * (probe), or {"busy", now_ms, done, held, queued}, with probe also the ms until the first held
 * candidate goes stale when stealing (else -1). Without probe, a "won" or "busy" reply ends
 * with one more element: the indices (from 0) of the candidates it found done. Each candidate as a
 * claim without a waiter id would judge it (next_one), done ones skipped first (next_claim); dead
 * waiters met are deleted and a new head of a free key's line woken, as that claim would.
 */
#define TL_REDIS_LUA_NEXT                                                                         \
    "local function next_win(hk, o, name, r, now, us)\n"                                          \
    "    local rk, ck = o.p .. 'lock:' .. name, o.p .. 'token:' .. name\n"                        \
    "    local event, detail = 'acquired', ''\n"                                                  \
    "    if r then\n"                                                                             \
    "        -- Stale: every holder is (shared ones: redis_holders_scripts.h).\n"                 \
    "        event, detail = 'stolen', names(hread(rk) or {r})\n"                                 \
    "        redis.call('DEL', rk)\n"                                                             \
    "    end\n"                                                                                   \
    "    local last = 0\n"                                                                        \
    "    local c = redis.pcall('GET', ck)\n"                                                      \
    "    if type(c) == 'table' then return bad(ck, tostring(c.err)) end\n"                        \
    "    if c then\n"                                                                             \
    "        last = num(c)\n"                                                                     \
    "        if not last then return bad(ck, 'not a token counter') end\n"                        \
    "    end\n"                                                                                   \
    "    local token = last + 1\n"                                                                \
    "    if token < us then token = us end\n"                                                     \
    "    if token > MAXNUM then return bad(ck, 'the token counter is exhausted') end\n"           \
    "    local life = tonumber(o.ttl) + tonumber(o.timeout)\n"                                    \
    "    redis.call('SET', ck, int(token), 'PX', life)\n"                                         \
    "    redis.call('HSET', rk, 'worker_id', o.worker, 'node_id', o.node, 'token', int(token),\n" \
    "               'claimed_at', int(now), 'heartbeat_at', int(now), 'lock_timeout_ms',\n"       \
    "               o.timeout, 'task_info', o.task, 'nonce', o.nonce)\n"                          \
    "    redis.call('PEXPIRE', rk, life)\n"                                                       \
    "    note(hk, o.hmax, now, event, name, o.worker, o.node, int(token), detail)\n"              \
    "    return {'won', now, event, 0, token}\n"                                                  \
    "end\n"

#define TL_REDIS_LUA_NEXT_ONE                                                                 \
    "-- Judges candidate i, not done, as a claim without a waiter id would: nil to go on (t " \
    "counts\n"                                                                                \
    "-- why), or the reply to end with.\n"                                                    \
    "local function next_one(hk, o, t, a, i, first)\n"                                        \
    "    local name = a[i]\n"                                                                 \
    "    local rk = o.p .. 'lock:' .. name\n"                                                 \
    "    local r, why = read(rk)\n"                                                           \
    "    if r == false then return bad(rk, why) end\n"                                        \
    "    local stale = r and o.now - r.heartbeat_at > r.lock_timeout_ms\n"                    \
    "    if r and not (stale and o.mode == 'steal') then\n"                                   \
    "        t.held = t.held + 1\n"                                                           \
    "        local left = r.heartbeat_at + r.lock_timeout_ms + 1 - o.now\n"                   \
    "        if o.probe and o.mode == 'steal' and (t.soonest < 0 or left < t.soonest) then\n" \
    "            t.soonest = left\n"                                                          \
    "        end\n"                                                                           \
    "        return nil\n"                                                                    \
    "    end\n"                                                                               \
    "    local lk, wk = o.p .. 'line:' .. name, o.p .. 'waiters:' .. name\n"                  \
    "    local wp = o.p .. 'wake:' .. name .. ':'\n"                                          \
    "    local line, lerr = line_read(lk, wk, o.now)\n"                                       \
    "    if not line then return lerr end\n"                                                  \
    "    local live, front = {}, false\n"                                                     \
    "    if o.probe then\n"                                                                   \
    "        for _, e in ipairs(line) do\n"                                                   \
    "            if e.live then live[#live + 1] = e end\n"                                    \
    "        end\n"                                                                           \
    "    else\n"                                                                              \
    "        live, front = line_prune(line, lk, wk, wp)\n"                                    \
    "    end\n"                                                                               \
    "    if #live > 0 then\n"                                                                 \
    "        t.queued = t.queued + 1\n"                                                       \
    "        if front and not r then wake(wp, live[1]) end\n"                                 \
    "        return nil\n"                                                                    \
    "    end\n"                                                                               \
    "    if o.probe then return {'free', o.now, i - first} end\n"                             \
    "    local out = next_win(hk, o, name, r, o.now, o.us)\n"                                 \
    "    if out[1] == 'won' then out[4] = i - first end\n"                                    \
    "    return out\n"                                                                        \
    "end\n"

#define TL_REDIS_LUA_NEXT_WALK                                                                     \
    "-- The walk: done markers looked up in chunks (4 names, doubling to 256) with one EXISTS "    \
    "each,\n"                                                                                      \
    "-- so that a long run of finished tasks costs one call per chunk; a chunk with some not "     \
    "done\n"                                                                                       \
    "-- is looked at name by name.\n"                                                              \
    "local function next_claim(hk, a, first)\n"                                                    \
    "    local o = {p = a[1], ttl = a[2], hmax = a[3], worker = a[4], node = a[5], task = a[6],\n" \
    "               timeout = a[7], mode = a[8], nonce = a[9], probe = a[11] == '1'}\n"            \
    "    o.us = now_us()\n"                                                                        \
    "    o.now = math.floor(o.us / 1000)\n"                                                        \
    "    if a[10] == '1' then\n"                                                                   \
    "        for i = first, #a do\n"                                                               \
    "            local r = read(o.p .. 'lock:' .. a[i])\n"                                         \
    "            if r and r.nonce == o.nonce and r.worker_id == o.worker then\n"                   \
    "                local out = {'won', o.now, 'replayed', i - first, unpack(record(r))}\n"       \
    "                out[#out + 1] = {}\n"                                                         \
    "                return out\n"                                                                 \
    "            end\n"                                                                            \
    "        end\n"                                                                                \
    "    end\n"                                                                                    \
    "    local t = {done = 0, held = 0, queued = 0, soonest = -1, seen = {}}\n"                    \
    "    local i, size = first, 4\n"                                                               \
    "    while i <= #a do\n"                                                                       \
    "        local last = math.min(i + size - 1, #a)\n"                                            \
    "        local dks = {}\n"                                                                     \
    "        for j = i, last do dks[#dks + 1] = o.p .. 'done:' .. a[j] end\n"                      \
    "        local n = redis.call('EXISTS', unpack(dks))\n"                                        \
    "        if n == #dks then\n"                                                                  \
    "            t.done = t.done + n\n"                                                            \
    "            for j = i, last do t.seen[#t.seen + 1] = j - first end\n"                         \
    "        else\n"                                                                               \
    "            for j = i, last do\n"                                                             \
    "                if n > 0 and redis.call('EXISTS', dks[j - i + 1]) == 1 then\n"                \
    "                    t.done = t.done + 1\n"                                                    \
    "                    t.seen[#t.seen + 1] = j - first\n"                                        \
    "                else\n"                                                                       \
    "                    local out = next_one(hk, o, t, a, j, first)\n"                            \
    "                    if out then\n"                                                            \
    "                        if out[1] == 'won' then out[#out + 1] = t.seen end\n"                 \
    "                        return out\n"                                                         \
    "                    end\n"                                                                    \
    "                end\n"                                                                        \
    "            end\n"                                                                            \
    "        end\n"                                                                                \
    "        i = last + 1\n"                                                                       \
    "        if size < 256 then size = size * 2 end\n"                                             \
    "    end\n"                                                                                    \
    "    if o.probe then return {'busy', o.now, t.done, t.held, t.queued, t.soonest} end\n"        \
    "    return {'busy', o.now, t.done, t.held, t.queued, t.seen}\n"                               \
    "end\n"

/* claim_next. KEYS: history. ARGV: as next_claim's `a` above, the names from 12. */
static const char script_claim_next[] = "return next_claim(KEYS[1], ARGV, 12)\n";

/*
 * finish: a release, done or not, and, with next = 1, a claim-next in the same script. KEYS:
 * history. ARGV: 1..11 as claim_next's (ignored without next), 12 key, 13 worker, 14 node,
 * 15 token, 16 summary, 17 done (1 or 0), 18 next (1 or 0), the candidates' names from 19.
 * Returns the release's outcome as the release script does ({"released"}, {"already"},
 * {"held", record...}, {"since", last token}, {"never"}); with next, after a release that
 * succeeded, {"released" | "already", claim-next's reply} or {"released" | "already", "error",
 * message} (the release stands; the claim-next failed). With done, the marker is written in
 * the same script as the record is deleted, and the event is "done".
 */
static const char script_finish[] =
    "local a = ARGV\n"
    "local p, ttl, hmax = a[1], a[2], a[3]\n"
    "local key, worker, node, token, summary, done, nxt = unpack(a, 12, 18)\n"
    "local rk, ck = p .. 'lock:' .. key, p .. 'token:' .. key\n"
    "local rel, x, rest = hrelease(rk, ck, worker, token, ttl)\n"
    "if rel == nil then return x end\n"
    "if rel == 'released' then\n"
    "    local now = math.floor(now_us() / 1000)\n"
    "    if done == '1' then\n"
    "        local dk = p .. 'done:' .. key\n"
    "        redis.call('DEL', dk)\n"
    "        redis.call('HSET', dk, 'worker_id', worker, 'node_id', x.node_id, 'token', token,\n"
    "                   'done_at', int(now), 'summary', summary)\n"
    "    end\n"
    "    local event = 'released'\n"
    "    if done == '1' then event = 'done' end\n"
    "    note(KEYS[1], hmax, now, event, key, worker, node, token, summary)\n"
    "    redis.pcall('PUBLISH', p .. 'released:' .. key, token)\n"
    "    hwake_head(p .. 'line:' .. key, p .. 'waiters:' .. key, p .. 'wake:' .. key .. ':', now,\n"
    "               rest)\n"
    "elseif rel == 'held' then\n"
    "    return {'held', unpack(record(x))}\n"
    "elseif rel == 'since' then\n"
    "    return {'since', x}\n"
    "elseif rel ~= 'already' then\n"
    "    return {rel}\n"
    "end\n"
    "if nxt ~= '1' then return {rel} end\n"
    "local ok, out = pcall(next_claim, KEYS[1], a, 19)\n"
    "if not ok then\n"
    "    if type(out) == 'table' then out = out.err end\n"
    "    return {rel, 'error', tostring(out)}\n"
    "end\n"
    "if out.err then return {rel, 'error', tostring(out.err)} end\n"
    "return {rel, out}\n";

/*
 * reopen. KEYS: done marker, history. ARGV: worker, node, key, history_max, channel. Deletes the
 * marker (whatever it holds), records a "reopened" event with the marker's token and publishes
 * on the key's release channel (a waiting claim-next may take it now). Returns {"reopened"} or
 * {"none"}.
 */
static const char script_reopen[] =
    "local worker, node, key, hmax, chan = unpack(ARGV)\n"
    "if redis.call('EXISTS', KEYS[1]) == 0 then return {'none'} end\n"
    "local v = redis.pcall('HMGET', KEYS[1], 'worker_id', 'token')\n"
    "local by, token = '?', '0'\n"
    "if not v.err then\n"
    "    if type(v[1]) == 'string' and #v[1] > 0 then by = v[1] end\n"
    "    if num(v[2]) then token = v[2] end\n"
    "end\n"
    "redis.call('DEL', KEYS[1])\n"
    "local now = math.floor(now_us() / 1000)\n"
    "note(KEYS[2], hmax, now, 'reopened', key, worker, node, token,\n"
    "     'done by ' .. by .. ' (token ' .. token .. ')')\n"
    "redis.pcall('PUBLISH', chan, token)\n"
    "return {'reopened'}\n";

static const char lua_next[] = TL_REDIS_LUA_NEXT;
static const char lua_next_one[] = TL_REDIS_LUA_NEXT_ONE;
static const char lua_next_walk[] = TL_REDIS_LUA_NEXT_WALK;

#endif /* TL_STORES_REDIS_NEXT_SCRIPTS_H */

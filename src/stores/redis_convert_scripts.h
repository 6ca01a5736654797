/*
 * redis_convert_scripts.h -- the Lua scripts of conversions (an upgrade or a downgrade of one
 * holder) and of the wait-for graph (store.h, version 5: convert and the wait-for graph),
 * included by redis.c only (its script table), after redis_scripts.h's prelude and line parts
 * and redis_holders_scripts.h's parts, which they begin with.
 *
 * The layout, beside redis_scripts.h's line. A waiter's value in PREFIX waiters:KEY keeps its
 * seven parts (older scripts take anything else for a dead waiter and delete it); what this
 * version adds goes into fields of their own, deleted with the waiter:
 * - "g:" ID: the waiter's holding text (store.h, struct tl_claim.holding), as its latest claim
 *   or conversion gave it; no field: "".
 * - "u:" ID: an upgrader's waiter: the token of the shared hold it converts. Its value says
 *   priority TL_PRIORITY_MAX (what older versions can read); its score in PREFIX line:KEY is
 *   that of TL_PRIORITY_UPGRADE, (1000 - 1001) * 2^40 + seq, below every other waiter's, so it
 *   heads the line for every version. waiters() reports TL_PRIORITY_UPGRADE.
 * PREFIX lines is a set of the KEYs whose line may have waiters: a join adds its KEY, a win or a
 * leave that empties the line removes it, and reading every waiter (waiters with key NULL)
 * removes the names whose line is gone (expired, or emptied by an older version).
 */
#ifndef TL_STORES_REDIS_CONVERT_SCRIPTS_H
#define TL_STORES_REDIS_CONVERT_SCRIPTS_H

/* The waiters' graph fields and the set of lines. */
static const char lua_graph[] =
    "local UPGRADE = 1001\n"
    "-- Keeps waiter id's holding text (none: '').\n"
    "local function gset(wk, id, holding)\n"
    "    if holding and #holding > 0 then\n"
    "        redis.call('HSET', wk, 'g:' .. id, holding)\n"
    "    else\n"
    "        redis.call('HDEL', wk, 'g:' .. id)\n"
    "    end\n"
    "end\n"
    "local function lines_add(set, name, life)\n"
    "    redis.call('SADD', set, name)\n"
    "    if redis.call('PTTL', set) < life then redis.call('PEXPIRE', set, life) end\n"
    "end\n"
    "local function lines_gone(set, name, lk)\n"
    "    if redis.call('EXISTS', lk) == 0 then redis.call('SREM', set, name) end\n"
    "end\n"
    "-- Appends the waiters of a line to out: {key, id, worker, node, priority, seq, since,\n"
    "-- heartbeat_at, timeout, live (1 or 0), holding}; unreadable entries are left out.\n"
    "local function wentries(out, name, lk, wk, now)\n"
    "    local line, err = line_read(lk, wk, now)\n"
    "    if not line then return err end\n"
    "    for _, e in ipairs(line) do\n"
    "        local w = e.w\n"
    "        if w then\n"
    "            local x = redis.call('HMGET', wk, 'u:' .. e.id, 'g:' .. e.id)\n"
    "            local prio = w.prio\n"
    "            if x[1] then prio = UPGRADE end\n"
    "            out[#out + 1] = {name, e.id, w.worker, w.node, prio, w.seq, w.since, w.beat,\n"
    "                             w.timeout, e.live and 1 or 0, x[2] or ''}\n"
    "        end\n"
    "    end\n"
    "end\n";

/*
 * convert. KEYS: record, counter, history, line, waiters, line's seq counter, the set of lines.
 * ARGV: worker, node, token (the holder's), mode (normal | steal), shared (1: a downgrade, 0: an
 * upgrade), slots, safety_ttl_ms, history_max, key, waiter id ('' for none), priority, waiter
 * timeout_ms, wake-up key prefix, holding, nonce, channel. Returns {"lost", now_ms} when no
 * holder has (worker, token); {"won", now_ms, event, the new record..., shared, slots, 0, 0}
 * (event: upgraded | downgraded | replayed: this very conversion, same nonce, had already won);
 * {"busy", now_ms, '', the oldest other counted holder's record..., shared, slots, waiting,
 * ahead}. A busy upgrade with a waiter id joins the line ahead of everyone but earlier
 * upgraders (or refreshes its place), noting the token it converts ("u:") and its holding text.
 */
static const char script_convert[] =
    "local worker, node, token, mode, shared, slots, ttl, hmax, key, wid, prio, wtimeout, wp,\n"
    "      holding, nonce, chan = unpack(ARGV)\n"
    "prio, wtimeout, slots, shared = tonumber(prio), tonumber(wtimeout), tonumber(slots), shared "
    "== '1'\n"
    "local lk, wk, sk = KEYS[4], KEYS[5], KEYS[6]\n"
    "local us = now_us()\n"
    "local now = math.floor(us / 1000)\n"
    "local hs, why = hread(KEYS[1])\n"
    "if hs == false then return bad(KEYS[1], why) end\n"
    "local me, others = nil, {}\n"
    "for _, h in ipairs(hs) do\n"
    "    if h.worker_id == worker and h.token_s == token then me = h else others[#others + 1] = h "
    "end\n"
    "end\n"
    "if not me then\n"
    "    for _, h in ipairs(hs) do\n"
    "        if h.nonce == nonce and h.worker_id == worker then\n"
    "            local out = {'won', now, 'replayed', unpack(hrec(h))}\n"
    "            out[13], out[14] = 0, 0\n"
    "            return out\n"
    "        end\n"
    "    end\n"
    "    return {'lost', now}\n"
    "end\n"
    "local counted, stale = {}, {}\n"
    "if not shared then\n"
    "    for _, h in ipairs(others) do\n"
    "        if mode == 'steal' and hstale(h, now) then\n"
    "            stale[#stale + 1] = h\n"
    "        else\n"
    "            counted[#counted + 1] = h\n"
    "        end\n"
    "    end\n"
    "end\n"
    "if #counted > 0 then\n"
    "    local line, lerr = line_read(lk, wk, now)\n"
    "    if not line then return lerr end\n"
    "    local live, front = line_prune(line, lk, wk, wp)\n"
    "    local waiting, ahead, mine = #live, 0, nil\n"
    "    for i, e in ipairs(live) do\n"
    "        if e.id == wid then mine = e end\n"
    "    end\n"
    "    if wid ~= '' then\n"
    "        if mine then\n"
    "            mine.w.beat, mine.w.timeout = now, wtimeout\n"
    "            redis.call('HSET', wk, wid, wtext(mine.w))\n"
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
    "            -- Older versions read priorities up to 1000: the score puts it first.\n"
    "            local w = {seq = seq, prio = math.min(prio, 1000), since = now, beat = now,\n"
    "                       timeout = wtimeout, worker = worker, node = node}\n"
    "            redis.call('ZADD', lk, int((1000 - prio) * P40 + seq), wid)\n"
    "            redis.call('HSET', wk, wid, wtext(w))\n"
    "            waiting = waiting + 1\n"
    "        end\n"
    "        redis.call('HSET', wk, 'u:' .. wid, token)\n"
    "        gset(wk, wid, holding)\n"
    "        ahead = redis.call('ZRANK', lk, wid)\n"
    "        local life = tonumber(ttl) + wtimeout\n"
    "        for _, k in ipairs({lk, wk, sk}) do\n"
    "            if redis.call('PTTL', k) < life then redis.call('PEXPIRE', k, life) end\n"
    "        end\n"
    "        lines_add(KEYS[7], key, life)\n"
    "        -- A wake-up sent before this answer is answered by it.\n"
    "        redis.call('DEL', wp .. wid)\n"
    "    else\n"
    "        ahead = #live\n"
    "    end\n"
    "    if front then\n"
    "        local l2 = line_read(lk, wk, now)\n"
    "        if l2 then hwake(wk, wp, line_prune(l2, lk, wk, wp), hs, wid) end\n"
    "    end\n"
    "    local out = {'busy', now, '', unpack(hrec(counted[1]))}\n"
    "    out[13], out[14] = waiting, ahead\n"
    "    return out\n"
    "end\n";

/* convert, continued: the new grant. */
static const char script_convert_win[] =
    "local last = 0\n"
    "local c = redis.pcall('GET', KEYS[2])\n"
    "if type(c) == 'table' then return bad(KEYS[2], tostring(c.err)) end\n"
    "if c then\n"
    "    last = num(c)\n"
    "    if not last then return bad(KEYS[2], 'not a token counter') end\n"
    "end\n"
    "for _, h in ipairs(hs) do\n"
    "    if h.token > last then last = h.token end\n"
    "end\n"
    "local t = last + 1\n"
    "if t < us then t = us end\n"
    "if t > MAXNUM then return bad(KEYS[2], 'the token counter is exhausted') end\n"
    "local keep = counted\n"
    "if shared then keep = others end\n"
    "local life = me.lock_timeout_ms\n"
    "for _, h in ipairs(keep) do\n"
    "    if h.lock_timeout_ms > life then life = h.lock_timeout_ms end\n"
    "end\n"
    "redis.call('SET', KEYS[2], int(t), 'PX', tonumber(ttl) + life)\n"
    "local detail = 'from token ' .. token\n"
    "if #stale > 0 then detail = detail .. '; displaced ' .. string.sub(names(stale), 6) end\n"
    "me.token, me.token_s, me.claimed_at, me.heartbeat_at = t, int(t), now, now\n"
    "me.shared, me.slots, me.nonce = shared, shared and slots or 0, nonce\n"
    "keep[#keep + 1] = me\n"
    "hwrite(KEYS[1], keep, ttl)\n"
    "if wid ~= '' then\n"
    "    line_drop(KEYS[4], KEYS[5], wp, wid)\n"
    "    lines_gone(KEYS[7], key, KEYS[4])\n"
    "end\n"
    "local event = 'upgraded'\n"
    "if shared then\n"
    "    event = 'downgraded'\n"
    "    -- Readers may enter beside it now.\n"
    "    redis.pcall('PUBLISH', chan, me.token_s)\n"
    "    hwake_head(KEYS[4], KEYS[5], wp, now, keep)\n"
    "end\n"
    "note(KEYS[3], hmax, now, event, key, worker, node, me.token_s, detail)\n"
    "local out = {'won', now, event, unpack(hrec(me))}\n"
    "out[13], out[14] = 0, 0\n"
    "return out\n";

/*
 * waiters. KEYS: line, waiters. ARGV: key. Returns {now_ms, {key, waiter id, worker, node,
 * priority, seq, since, heartbeat_at, timeout_ms, live (1 or 0), holding}, ...} in the line's
 * order; entries whose fields cannot be read are left out. Reads only.
 */
static const char script_waiters[] = "local now = math.floor(now_us() / 1000)\n"
                                     "local out = {now}\n"
                                     "local err = wentries(out, ARGV[1], KEYS[1], KEYS[2], now)\n"
                                     "if err then return err end\n"
                                     "return out\n";

/*
 * waiters_all (the wait-for graph). KEYS: the set of lines. ARGV: the key prefix. Returns
 * {now_ms, entries as waiters' of every line in the set...}; deletes from the set the names
 * whose line is gone. A line that cannot be read (garbage under the prefix) is left out: its
 * claims fail, so no waiter of ours stands in it.
 */
static const char script_waiters_all[] =
    "local prefix = ARGV[1]\n"
    "local now = math.floor(now_us() / 1000)\n"
    "local out = {now}\n"
    "local names = redis.pcall('SMEMBERS', KEYS[1])\n"
    "if names.err then return bad(KEYS[1], names.err) end\n"
    "for _, name in ipairs(names) do\n"
    "    local lk, wk = prefix .. 'line:' .. name, prefix .. 'waiters:' .. name\n"
    "    if redis.call('EXISTS', lk) == 0 then\n"
    "        redis.call('SREM', KEYS[1], name)\n"
    "    else\n"
    "        wentries(out, name, lk, wk, now)\n"
    "    end\n"
    "end\n"
    "return out\n";

#endif /* TL_STORES_REDIS_CONVERT_SCRIPTS_H */

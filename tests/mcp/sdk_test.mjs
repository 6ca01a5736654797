// sdk_test.mjs -- `tasklock mcp` driven by the official MCP TypeScript SDK client
// (@modelcontextprotocol/sdk), as an agent's MCP client would drive it. Run by run_sdk_tests.sh,
// which installs the SDK into the build tree and copies this file beside it.
//
// Environment: TL_MCP_BIN (the built tasklock), TL_MCP_TMP (a temporary directory of this run).
// Every wait on real time is a poll with a bound; none is a bare sleep.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import AjvModule from 'ajv';

const BIN = process.env.TL_MCP_BIN;
const TMP = process.env.TL_MCP_TMP;
assert.ok(BIN && TMP, 'TL_MCP_BIN and TL_MCP_TMP must be set');
const STORE = `sqlite:${TMP}/sdk.db`;
const TOOLS = ['lock_acquire', 'claim_next', 'lock_heartbeat', 'lock_release', 'lock_reopen',
               'lock_status', 'lock_list', 'lock_history'];
const servers = []; // every server's stderr, checked for sanitizer reports at the end
const clients = []; // closed at the end whatever failed, so that no server outlives the run
// A run that hangs fails instead (ctest's own timeout would kill node but not the servers).
setTimeout(() => { process.stderr.write('sdk_test: over 240 s\n'); process.exit(1); }, 240000)
  .unref();

function serverEnv() {
  const env = { ...process.env };
  delete env.TASKLOCK_WORKER; // the worker id must come from clientInfo.name
  delete env.TASKLOCK_STORE;
  return env;
}

async function connect(name, extra = []) {
  const transport = new StdioClientTransport({
    command: BIN, args: ['-s', STORE, 'mcp', ...extra], stderr: 'pipe', env: serverEnv(),
  });
  const rec = { name, err: '' };
  transport.stderr.on('data', (d) => { rec.err += d; });
  servers.push(rec);
  const client = new Client({ name, version: '1.0.0' });
  clients.push(client);
  await client.connect(transport);
  await client.listTools(); // the client validates structuredContent against these schemas
  return { client, transport, rec };
}

const call = (c, name, args, options) => c.client.callTool({ name, arguments: args }, undefined,
                                                              options);
const text = (r) => r.content.map((x) => x.text).join('\n');

async function poll(what, fn, limitMs = 15000, stepMs = 50) {
  const end = Date.now() + limitMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) assert.fail(`not within ${limitMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

async function status(c, key) {
  const r = await call(c, 'lock_status', { key });
  assert.equal(r.isError, false, text(r));
  return r.structuredContent;
}

// Whether process `pid` has exited (a zombie counts: it runs no more).
function gone(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

let observer; // a client that only looks
test('setup: an observer connects', async () => {
  observer = await connect('observer');
  assert.equal(observer.client.getServerVersion().name, 'tasklock');
});

test('tools/list: the eight tools, schemas that compile', async () => {
  const { tools } = await observer.client.listTools();
  assert.deepEqual(tools.map((t) => t.name).sort(), [...TOOLS].sort());
  const Ajv = AjvModule.default ?? AjvModule;
  const ajv = new Ajv({ strict: true, allErrors: true });
  for (const t of tools) {
    assert.match(t.name, /^[A-Za-z0-9_.-]{1,128}$/);
    assert.ok(t.description.length > 40, `${t.name} has a description`);
    assert.equal(t.inputSchema.type, 'object', `${t.name} inputSchema is an object schema`);
    assert.equal(t.inputSchema.additionalProperties, false);
    assert.equal(t.outputSchema.type, 'object', `${t.name} outputSchema is an object schema`);
    ajv.compile(t.inputSchema);
    ajv.compile(t.outputSchema);
    assert.equal(typeof t.annotations.readOnlyHint, 'boolean');
  }
  const by = Object.fromEntries(tools.map((t) => [t.name, t]));
  for (const n of ['lock_status', 'lock_list', 'lock_history'])
    assert.equal(by[n].annotations.readOnlyHint, true, n);
  for (const n of ['lock_release', 'lock_heartbeat'])
    assert.equal(by[n].annotations.idempotentHint, true, n);
  assert.deepEqual(by.lock_acquire.inputSchema.required, ['key']);
  assert.ok(!by.lock_acquire.inputSchema.properties.strategy.enum.includes('force'),
            'force is offered only with --allow-force');
  assert.equal(by.lock_release.inputSchema.properties.done.type, 'boolean');
  assert.deepEqual(by.claim_next.inputSchema.properties.strategy.enum,
                   ['steal-stale', 'retry', 'fail-fast']);
  assert.ok(by.claim_next.outputSchema.properties.outcome.enum.includes('none_left'));
  assert.equal(by.lock_reopen.annotations.idempotentHint, true);
});

test('acquire, a conflict naming the holder, heartbeat, release', async () => {
  const a = await connect('agent-a');
  const b = await connect('agent-b');
  const got = await call(a, 'lock_acquire', { key: 'sdk-1', task_info: { doing: 'tests' } });
  assert.equal(got.isError, false, text(got));
  const lock = got.structuredContent;
  assert.equal(lock.key, 'sdk-1');
  assert.ok(Number.isSafeInteger(lock.token) && lock.token > 0);
  assert.match(lock.worker_id, /^agent-a-[0-9a-f]{6}$/);
  assert.deepEqual(JSON.parse(got.content[0].text), lock, 'the same JSON as text');

  const busy = await call(b, 'lock_acquire', { key: 'sdk-1' });
  assert.equal(busy.isError, true);
  assert.ok(text(busy).includes(lock.worker_id), text(busy));
  assert.match(text(busy), /since .* ago\); last heartbeat .* ago: fresh/);

  const beat = await call(a, 'lock_heartbeat', { key: 'sdk-1', token: lock.token });
  assert.equal(beat.isError, false, text(beat));
  assert.ok(beat.structuredContent.heartbeat_at);
  const theirs = await call(b, 'lock_heartbeat', { key: 'sdk-1', token: lock.token });
  assert.equal(theirs.isError, true, 'b cannot heartbeat a lock of a');

  const st = await status(b, 'sdk-1');
  assert.equal(st.held, true);
  assert.equal(st.lock.worker_id, lock.worker_id);
  assert.equal(st.lock.mine, false);
  assert.deepEqual(st.lock.task_info, { doing: 'tests' });

  const rel = await call(a, 'lock_release', { key: 'sdk-1', token: lock.token, summary: 'ok' });
  assert.equal(rel.structuredContent.outcome, 'released', text(rel));
  const again = await call(a, 'lock_release', { key: 'sdk-1', token: lock.token });
  assert.equal(again.isError, false);
  assert.ok(['released', 'not_held'].includes(again.structuredContent.outcome));
  const now = await call(b, 'lock_acquire', { key: 'sdk-1' });
  assert.equal(now.isError, false, text(now));

  const hist = await call(b, 'lock_history', { key: 'sdk-1', limit: 10 });
  assert.deepEqual(hist.structuredContent.events.map((e) => e.event),
                   ['acquired', 'released', 'acquired']);
  await a.client.close();
  await b.client.close();
});

test('a lock forced away: its release says not_yours; force needs --allow-force', async () => {
  const a = await connect('victim');
  const b = await connect('admin', ['--allow-force']);
  const got = await call(a, 'lock_acquire', { key: 'sdk-force' });
  assert.equal(got.isError, false, text(got));
  const refused = await call(a, 'lock_acquire', { key: 'sdk-other', strategy: 'force' });
  assert.equal(refused.isError, true);
  assert.match(text(refused), /--allow-force/);
  const forced = await call(b, 'lock_acquire', { key: 'sdk-force', strategy: 'force' });
  assert.equal(forced.isError, false, text(forced));
  const late = await call(a, 'lock_release', { key: 'sdk-force', token: got.structuredContent.token });
  assert.equal(late.isError, true, text(late));
  assert.equal(late.structuredContent.outcome, 'not_yours');
  assert.equal(late.structuredContent.holder.worker_id, forced.structuredContent.worker_id);
  await a.client.close();
  await b.client.close();
});

test('the server heartbeats the locks it granted', async () => {
  const a = await connect('beater');
  // Heartbeats every 1.5 s; watched for longer than the lock timeout.
  const got = await call(a, 'lock_acquire', { key: 'sdk-beat', lock_timeout_seconds: 4.5 });
  assert.equal(got.isError, false, text(got));
  const seen = new Set();
  const end = Date.now() + 5000;
  await poll('two heartbeats by the server', async () => {
    const st = await status(observer, 'sdk-beat');
    assert.equal(st.lock.stale, false, 'never stale while the client is connected');
    seen.add(st.lock.heartbeat_last);
    return seen.size >= 3 && Date.now() > end;
  }, 20000, 200);
  await a.client.close();
});

test('a waiter in line gets the lock when it is released', async () => {
  const a = await connect('holder');
  const b = await connect('waiter');
  const got = await call(a, 'lock_acquire', { key: 'sdk-line' });
  assert.equal(got.isError, false, text(got));
  const t0 = Date.now();
  const waiting = call(b, 'lock_acquire', { key: 'sdk-line', wait_seconds: 30 });
  await poll('b in line', async () => (await status(observer, 'sdk-line')).waiting === 1);
  const rel = await call(a, 'lock_release', { key: 'sdk-line', token: got.structuredContent.token });
  assert.equal(rel.structuredContent.outcome, 'released');
  const won = await waiting;
  assert.equal(won.isError, false, text(won));
  assert.ok(won.structuredContent.token > got.structuredContent.token, 'a larger token');
  assert.ok(Date.now() - t0 < 30000);
  await a.client.close();
  await b.client.close();
});

test('cancelling a waiting acquire takes it out of the line', async () => {
  const a = await connect('holder2');
  const b = await connect('canceller');
  assert.equal((await call(a, 'lock_acquire', { key: 'sdk-cancel' })).isError, false);
  const ac = new AbortController();
  const waiting = call(b, 'lock_acquire', { key: 'sdk-cancel', wait_seconds: 30 },
                       { signal: ac.signal });
  await poll('b in line', async () => (await status(observer, 'sdk-cancel')).waiting === 1);
  ac.abort('the agent changed its mind');
  await assert.rejects(waiting);
  await poll('b out of the line', async () => (await status(observer, 'sdk-cancel')).waiting === 0,
             5000);
  // The connection goes on: b's next call is answered.
  const st = await call(b, 'lock_status', { key: 'sdk-cancel' });
  assert.equal(st.structuredContent.held, true);
  await a.client.close();
  await b.client.close();
});

test('claim_next: two clients get two tasks; done is skipped; none_left; reopen', async () => {
  const keys = ['sdk-q1', 'sdk-q2', 'sdk-q3'];
  const a = await connect('queue-a');
  const b = await connect('queue-b');
  const ga = await call(a, 'claim_next', { keys, task_info: { doing: 'q' } });
  const gb = await call(b, 'claim_next', { keys });
  assert.equal(ga.isError, false, text(ga));
  assert.equal(gb.isError, false, text(gb));
  assert.equal(ga.structuredContent.outcome, 'claimed');
  assert.deepEqual([ga.structuredContent.key, gb.structuredContent.key], ['sdk-q1', 'sdk-q2']);
  assert.ok(Number.isSafeInteger(ga.structuredContent.token));
  assert.match(ga.structuredContent.worker_id, /^queue-a-[0-9a-f]{6}$/);
  assert.deepEqual(JSON.parse(ga.content[0].text), ga.structuredContent);
  assert.equal((await status(observer, 'sdk-q1')).lock.worker_id, ga.structuredContent.worker_id);

  const done = await call(a, 'lock_release', { key: 'sdk-q1', token: ga.structuredContent.token,
                                               summary: 'finished', done: true });
  assert.equal(done.structuredContent.outcome, 'released', text(done));
  assert.equal(done.structuredContent.done, true);
  const st = await status(observer, 'sdk-q1');
  assert.equal(st.held, false);
  assert.equal(st.done.summary, 'finished');
  assert.equal(st.done.worker_id, ga.structuredContent.worker_id);
  const listed = await call(observer, 'lock_list', { prefix: 'sdk-q', include_done: true });
  assert.deepEqual(listed.structuredContent.done.map((d) => d.key), ['sdk-q1'], text(listed));
  const next = await call(a, 'claim_next', { keys });
  assert.equal(next.structuredContent.key, 'sdk-q3', 'sdk-q1 is done, sdk-q2 held');

  const busy = await call(observer, 'claim_next', { keys });
  assert.equal(busy.isError, true);
  assert.match(text(busy), /2 held, 0 with waiters in line, 1 done/);

  for (const [c, g] of [[b, gb], [a, next]]) {
    const r = await call(c, 'lock_release', { key: g.structuredContent.key,
                                              token: g.structuredContent.token, done: true });
    assert.equal(r.structuredContent.outcome, 'released', text(r));
  }
  const left = await call(observer, 'claim_next', { keys });
  assert.equal(left.isError, false, text(left));
  assert.equal(left.structuredContent.outcome, 'none_left');
  assert.match(text(left), /TL_ENOTASK/);

  const re = await call(observer, 'lock_reopen', { key: 'sdk-q3' });
  assert.equal(re.structuredContent.was_done, true, text(re));
  const again = await call(b, 'claim_next', { keys });
  assert.equal(again.structuredContent.key, 'sdk-q3');
  const hist = await call(observer, 'lock_history', { key: 'sdk-q3' });
  assert.deepEqual(hist.structuredContent.events.map((e) => e.event),
                   ['acquired', 'done', 'reopened', 'acquired']);
  await a.client.close();
  await b.client.close();
  assert.equal((await status(observer, 'sdk-q3')).held, false, 'released when b went away');
});

test('cancelling a waiting claim_next: no claim, and the connection goes on', async () => {
  const a = await connect('q-holder');
  const b = await connect('q-canceller');
  const held = await call(a, 'lock_acquire', { key: 'sdk-qc' });
  assert.equal(held.isError, false, text(held));
  const ac = new AbortController();
  const t0 = Date.now();
  const waiting = call(b, 'claim_next', { keys: ['sdk-qc'], wait_seconds: 30, strategy: 'retry' },
                       { signal: ac.signal });
  await b.client.ping(); // answered by the reading thread: the claim was read before it
  ac.abort('the agent changed its mind');
  await assert.rejects(waiting);
  // b's next call waits for the claim to end: it must not take the 30 s.
  const st = await call(b, 'lock_status', { key: 'sdk-qc' });
  assert.ok(Date.now() - t0 < 20000, `answered after ${Date.now() - t0} ms`);
  assert.equal(st.structuredContent.lock.worker_id, held.structuredContent.worker_id);
  const rel = await call(a, 'lock_release', { key: 'sdk-qc', token: held.structuredContent.token });
  assert.equal(rel.structuredContent.outcome, 'released');
  assert.equal((await status(b, 'sdk-qc')).held, false, 'the cancelled claim took nothing');
  await a.client.close();
  await b.client.close();
});

test('closing stdin while holding releases the lock, promptly', async () => {
  const c = await connect('closer');
  assert.equal((await call(c, 'lock_acquire', { key: 'sdk-close' })).isError, false);
  const pid = c.transport.pid;
  const t0 = Date.now();
  await c.client.close(); // ends stdin; SIGTERM only if the server is still there after 2 s
  assert.ok(Date.now() - t0 < 2000, `exited on EOF in ${Date.now() - t0} ms`);
  await poll('the server gone', async () => gone(pid), 5000);
  assert.equal((await status(observer, 'sdk-close')).held, false);
});

test('--on-exit keep leaves the lock to go stale', async () => {
  const c = await connect('keeper', ['--on-exit', 'keep']);
  const got = await call(c, 'lock_acquire', { key: 'sdk-keep', lock_timeout_seconds: 1 });
  assert.equal(got.isError, false, text(got));
  await c.client.close();
  const st = await status(observer, 'sdk-keep');
  assert.equal(st.held, true, 'kept');
  await poll('stale after its lock timeout',
             async () => (await status(observer, 'sdk-keep')).lock.stale, 10000, 100);
  const taken = await call(observer, 'lock_acquire', { key: 'sdk-keep' }); // steal-stale
  assert.equal(taken.isError, false, text(taken));
});

test('a client killed with SIGKILL: the server sees EOF and releases', async () => {
  const child = spawn(process.execPath, [new URL('./sdk_child.mjs', import.meta.url).pathname],
                      { stdio: ['ignore', 'pipe', 'inherit'],
                        env: { ...serverEnv(), TL_MCP_STORE: STORE } });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  const line = await poll('the child holds sdk-kill', async () => out.includes('\n') && out);
  const { pid, token } = JSON.parse(line);
  assert.ok(token > 0);
  assert.equal((await status(observer, 'sdk-kill')).held, true);
  child.kill('SIGKILL');
  await poll('the server released and exited', async () =>
    gone(pid) && !(await status(observer, 'sdk-kill')).held, 10000, 100);
});

test('resources: the list and one lock in the seed\'s metadata shape', async () => {
  const a = await connect('reader');
  assert.equal((await call(a, 'lock_acquire', { key: 'sdk/res 1'.replace(' ', '-') })).isError,
               false);
  const { resources } = await a.client.listResources();
  const uris = resources.map((r) => r.uri);
  assert.ok(uris.includes('tasklock://locks'));
  assert.ok(uris.includes('tasklock://locks/sdk%2Fres-1'), uris.join(' '));
  const one = await a.client.readResource({ uri: 'tasklock://locks/sdk%2Fres-1' });
  const meta = JSON.parse(one.contents[0].text);
  assert.match(meta.lock.worker_id, /^reader-/);
  for (const k of ['node_id', 'claimed_at', 'heartbeat_last', 'task_info', 'token'])
    assert.ok(k in meta.lock, k);
  const all = JSON.parse((await a.client.readResource({ uri: 'tasklock://locks' })).contents[0].text);
  assert.ok(all.locks.some((l) => l.key === 'sdk/res-1'));
  const { resourceTemplates } = await a.client.listResourceTemplates();
  assert.equal(resourceTemplates[0].uriTemplate, 'tasklock://locks/{key}');
  await assert.rejects(a.client.readResource({ uri: 'tasklock://locks/nobody-holds-this' }));
  await a.client.close();
});

test('invalid arguments are tool errors the model can read; an unknown tool is a protocol error',
     async () => {
  const bad = await call(observer, 'lock_acquire', { key: 'has space' });
  assert.equal(bad.isError, true);
  assert.match(text(bad), /not valid/);
  const none = await call(observer, 'claim_next', {});
  assert.equal(none.isError, true);
  assert.match(text(none), /either "keys"/);
  const free = await call(observer, 'lock_release', { key: 'sdk-never', token: 1, done: true });
  assert.equal(free.isError, false, text(free));
  assert.equal(free.structuredContent.outcome, 'not_held');
  await assert.rejects(call(observer, 'no_such_tool', {}), /Unknown tool/);
});

after(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => {})));
  for (const s of servers) {
    assert.doesNotMatch(s.err, /Sanitizer|runtime error:/, `${s.name}'s server reported:\n${s.err}`);
  }
});

// A real Prometheus (Debian's) scrapes `tasklock serve`: started on a temporary data directory
// and a free 127.0.0.1 port, it scrapes /metrics every second; its HTTP API must answer the
// expected tasklock_locks_held, the event counter must count, and `promtool check metrics`
// must accept the exposition. Everything is stopped by PID; waits are bounded polls.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { TMP, cli, poll, startServe, stop, stopAll } from './common.mjs';

let prom;
after(async () => {
  if (prom) await stop(prom);
  await stopAll();
});

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function query(port, q) {
  const r = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(q)}`);
  if (!r.ok) return null;
  const body = await r.json();
  return body.status === 'success' ? body.data.result : null;
}

test('prometheus scrapes tasklock serve', async () => {
  const t0 = Date.now();
  cli('acquire', 'deploy:prod');
  cli('acquire', 'build/main');
  const serve = await startServe(['--refresh', '200ms']);
  const target = new URL(serve.url).host;

  // promtool accepts the exposition, with counters that have counted something.
  cli('acquire', 'report:nightly');
  cli('release', 'report:nightly');
  await poll(async () => (await (await fetch(serve.url + 'metrics')).text())
    .includes('event="released"} 1'), 10000, 'the release was not counted');
  const text = await (await fetch(serve.url + 'metrics')).text();
  const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 20000 });
  assert.equal(check.status, 0, 'promtool check metrics: ' + check.stdout + check.stderr);

  const port = await freePort();
  const data = join(TMP, 'prometheus-data');
  mkdirSync(data, { recursive: true });
  const config = join(TMP, 'prometheus.yml');
  writeFileSync(config, [
    'global:',
    '  scrape_interval: 1s',
    '  evaluation_interval: 1s',
    'scrape_configs:',
    '  - job_name: tasklock',
    '    static_configs:',
    `      - targets: ['${target}']`,
    '',
  ].join('\n'));
  prom = spawn('prometheus', [
    '--config.file=' + config, '--storage.tsdb.path=' + data,
    '--web.listen-address=127.0.0.1:' + port, '--log.level=warn',
  ], { stdio: ['ignore', 'inherit', 'inherit'] });

  const held = await poll(async () => {
    try {
      const r = await query(port, 'tasklock_locks_held');
      return r && r.length === 1 && r[0].value[1] === '2' ? r : null;
    } catch {
      return null; // not up yet
    }
  }, 20000, 'prometheus did not report tasklock_locks_held 2');
  assert.equal(held[0].metric.job, 'tasklock');
  assert.match(held[0].metric.store, /^sqlite:/);

  // One more lock: the next scrapes see 3, and the acquisitions counted.
  cli('acquire', 'db:migrate');
  await poll(async () => {
    const r = await query(port, 'tasklock_locks_held');
    return r && r.length === 1 && r[0].value[1] === '3';
  }, 20000, 'prometheus did not see the third lock');
  await poll(async () => {
    const r = await query(port, 'sum(tasklock_events_total{event="acquired"})');
    return r && r.length === 1 && Number(r[0].value[1]) >= 2;
  }, 20000, 'prometheus did not see the acquisitions counted');
  const up = await query(port, 'up{job="tasklock"}');
  assert.equal(up[0].value[1], '1');

  assert.equal(await stop(prom), 0);
  prom = null;
  assert.equal(await stop(serve.child), 0);
  for (const k of ['deploy:prod', 'build/main', 'db:migrate']) cli('release', k);
  console.log(`prometheus test: ${Date.now() - t0} ms`);
});

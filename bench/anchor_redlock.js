// anchor_redlock.js -- node's redlock (with ioredis) on the same Redis, as an anchor tasklock is
// compared to. One process, one client, one resource: lock + unlock in a loop (each one script
// by EVALSHA: two round trips a cycle), for SECONDS after a short warm-up.
//
//   node anchor_redlock.js URL SECONDS [--csv FILE --rep N]
//
// ioredis and redlock come from bench/node (installed by bench/run.sh; NODE_PATH points there).
// Rows go to the CSV in bench_common.h's long format: rep,store,subject,config,metric,value.
'use strict';

const fs = require('fs');
const Redis = require('ioredis');
const Redlock = require('redlock');

const LOCK_TTL_MS = 300000; // as tasklock's default lock timeout (5 min)

function quantile(v, q) {
  if (v.length === 0) return 0;
  const s = Float64Array.from(v).sort();
  return s[Math.min(Math.floor(q * s.length), s.length - 1)];
}

function nowMs() {
  return Number(process.hrtime.bigint()) / 1e6;
}

async function main() {
  const argv = process.argv.slice(2);
  let csv = null;
  let rep = 1;
  const pos = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--csv') csv = argv[++i];
    else if (argv[i] === '--rep') rep = parseInt(argv[++i], 10);
    else pos.push(argv[i]);
  }
  if (pos.length < 2) {
    console.error('usage: node anchor_redlock.js URL SECONDS [--csv FILE --rep N]');
    process.exit(2);
  }
  const [url, seconds] = [pos[0], parseFloat(pos[1])];
  const client = new Redis(url);
  const redlock = new Redlock([client], { retryCount: 0, driftFactor: 0.01 });
  const resource = `bench-redlock-${process.pid}`;

  const warmEnd = nowMs() + 200;
  while (nowMs() < warmEnd) {
    const lock = await redlock.lock(resource, LOCK_TTL_MS);
    await lock.unlock();
  }
  const lat = [];
  const t0 = nowMs();
  const end = t0 + seconds * 1000;
  for (;;) {
    const c0 = nowMs();
    if (c0 >= end) break;
    const lock = await redlock.lock(resource, LOCK_TTL_MS);
    await lock.unlock();
    lat.push(nowMs() - c0);
  }
  const rate = lat.length / ((nowMs() - t0) / 1000);
  const p50 = quantile(lat, 0.5);
  const p99 = quantile(lat, 0.99);
  if (csv) {
    const row = (m, v) => `${rep},redis,anchor-redlock,,${m},${v}\n`;
    fs.appendFileSync(csv, row('cycles_per_s', rate.toFixed(1)) + row('cycle_p50_ms', p50.toFixed(4)) +
      row('cycle_p99_ms', p99.toFixed(4)));
  }
  console.error(`redlock: ${rate.toFixed(0)} cycles/s (p50 ${p50.toFixed(3)} ms, p99 ${p99.toFixed(3)} ms)`);
  client.disconnect();
}

main().catch((e) => {
  console.error(`anchor_redlock: ${e.message}`);
  process.exit(1);
});

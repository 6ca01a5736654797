// anchor_etcd3.js -- node's etcd3 client (npm `etcd3`, gRPC) on the same etcd, as an anchor
// tasklock is compared to. One process, one client, one resource: client.lock(name).acquire()
// then release() in a loop, for SECONDS after a short warm-up. etcd3's Lock grants a lease of
// its own for every acquire, puts the key if absent (a txn) with that lease, and releases by
// revoking the lease: three writes (three round trips) a cycle.
//
//   node anchor_etcd3.js HOST:PORT SECONDS [--csv FILE --rep N]
//
// etcd3 comes from bench/node (installed by bench/run.sh; NODE_PATH points there). Rows go to
// the CSV in bench_common.h's long format: rep,store,subject,config,metric,value.
'use strict';

const fs = require('fs');
const { Etcd3 } = require('etcd3');

const LOCK_TTL_S = 300; // as tasklock's default lock timeout (5 min)

function quantile(v, q) {
  if (v.length === 0) return 0;
  const s = Float64Array.from(v).sort();
  return s[Math.min(Math.floor(q * s.length), s.length - 1)];
}

function nowMs() {
  return Number(process.hrtime.bigint()) / 1e6;
}

async function cycle(client, resource) {
  const lock = client.lock(resource).ttl(LOCK_TTL_S);
  await lock.acquire();
  await lock.release();
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
    console.error('usage: node anchor_etcd3.js HOST:PORT SECONDS [--csv FILE --rep N]');
    process.exit(2);
  }
  const [endpoint, seconds] = [pos[0], parseFloat(pos[1])];
  // A gRPC call without a deadline can hang (seen once in a run of 7): end with an error
  // rather than stall the whole benchmark.
  setTimeout(() => {
    console.error('anchor_etcd3: no progress, giving up');
    process.exit(1);
  }, (seconds + 30) * 1000).unref();
  const client = new Etcd3({ hosts: `http://${endpoint}` });
  const resource = `bench-etcd3-${process.pid}`;

  const warmEnd = nowMs() + 200;
  while (nowMs() < warmEnd) await cycle(client, resource);
  const lat = [];
  const t0 = nowMs();
  const end = t0 + seconds * 1000;
  for (;;) {
    const c0 = nowMs();
    if (c0 >= end) break;
    await cycle(client, resource);
    lat.push(nowMs() - c0);
  }
  const rate = lat.length / ((nowMs() - t0) / 1000);
  const p50 = quantile(lat, 0.5);
  const p99 = quantile(lat, 0.99);
  if (csv) {
    const row = (m, v) => `${rep},etcd,anchor-etcd3,,${m},${v}\n`;
    fs.appendFileSync(csv, row('cycles_per_s', rate.toFixed(1)) + row('cycle_p50_ms', p50.toFixed(4)) +
      row('cycle_p99_ms', p99.toFixed(4)));
  }
  console.error(`etcd3: ${rate.toFixed(0)} cycles/s (p50 ${p50.toFixed(3)} ms, p99 ${p99.toFixed(3)} ms)`);
  client.close();
  process.exit(0);
}

main().catch((e) => {
  console.error(`anchor_etcd3: ${e.message}`);
  process.exit(1);
});

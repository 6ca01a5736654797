// Helpers of the node tests of `tasklock serve`: start it (and stop it by PID), run the CLI,
// bounded waits.
import { spawn, execFileSync } from 'node:child_process';
import { writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import readline from 'node:readline';

export const BIN = process.env.TL_SERVE_BIN;
export const TMP = process.env.TL_SERVE_TMP;
export const OUT = process.env.TL_SERVE_OUT;
export const STORE = 'sqlite:' + join(TMP, 'serve.db');

// `tasklock -s STORE ARGS...`; its stdout.
export function cli(...args) {
  return execFileSync(BIN, ['-s', STORE, ...args], { encoding: 'utf8', timeout: 20000 });
}

// A process of ours, stopped by PID at the end.
const children = new Set();
export function startBackground(args) {
  const child = spawn(BIN, ['-s', STORE, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

// Starts serve on a free port; resolves to {url, child} once it printed its URL.
export async function startServe(opts = []) {
  const child = spawn(BIN, ['-s', STORE, 'serve', '--listen', '127.0.0.1:0', ...opts], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.add(child);
  child.on('exit', () => children.delete(child));
  const rl = readline.createInterface({ input: child.stdout });
  const line = await within(20000, new Promise((resolve, reject) => {
    rl.once('line', resolve);
    child.once('exit', (code) => reject(new Error('serve exited with ' + code)));
  }), 'serve did not print its URL');
  const url = line.replace(/^listening on /, '');
  return { url, child };
}

export function tokenFile(token) {
  const f = join(TMP, 'admin-token');
  writeFileSync(f, '\n  ' + token + '  \n');
  chmodSync(f, 0o600);
  return f;
}

// Stops a child by its PID (SIGTERM, then SIGKILL after a bound); resolves to its exit code.
export async function stop(child, ms = 10000) {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const done = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  process.kill(child.pid, 'SIGTERM');
  const timer = setTimeout(() => process.kill(child.pid, 'SIGKILL'), ms);
  const code = await done;
  clearTimeout(timer);
  return code;
}

export async function stopAll() {
  await Promise.all([...children].map((c) => stop(c)));
}

export function within(ms, promise, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(what + ' (' + ms + ' ms)')), ms); }),
  ]);
}

// Polls `cond` (async) every `step` ms until it is truthy, at most `ms`.
export async function poll(cond, ms, what, step = 50) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(what + ' (' + ms + ' ms)');
    await new Promise((r) => setTimeout(r, step));
  }
}

// The page of `tasklock serve` in Debian's headless chromium, driven by puppeteer-core
// (issue 16's evidence): live updates without a reload, hostile keys and metadata rendered as
// text, the admin button with and without a token, the server going away, and screenshots
// (light and dark) saved into the build tree.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';
import { BIN, OUT, cli, poll, startBackground, startServe, stop, stopAll, tokenFile } from './common.mjs';

const REFRESH = 500; // ms
const TOKEN = 'browser-test-token-93c1';
let browser;

after(async () => {
  if (browser) await browser.close(); // puppeteer ends chromium by its PID
  await stopAll();
});

async function openPage(url) {
  const page = await browser.newPage();
  const dialogs = [];
  const errors = [];
  page.on('dialog', async (d) => { dialogs.push(d.message()); await d.dismiss(); });
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.setViewport({ width: 1200, height: 760 });
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('#conn.live', { timeout: 10000 });
  await page.evaluate(() => { window.__notReloaded = true; });
  return { page, dialogs, errors };
}

const rowFor = (page, key) =>
  page.evaluate((k) => [...document.querySelectorAll('#locks tbody tr')]
    .some((tr) => tr.getAttribute('data-key') === k), key);

test('the dashboard page', async () => {
  browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
  });
  const serve = await startServe(['--refresh', REFRESH + 'ms', '--admin-token-file', tokenFile(TOKEN)]);
  const { page, dialogs, errors } = await openPage(serve.url);

  // Live: a lock taken by another process shows within 2 refresh intervals, no reload.
  cli('acquire', 'build:web', '--info', 'owner=ci');
  let t0 = Date.now();
  await page.waitForFunction(() => [...document.querySelectorAll('#locks tbody tr')]
    .some((tr) => tr.getAttribute('data-key') === 'build:web'), { timeout: 10000, polling: 'mutation' });
  const shown = Date.now() - t0;
  console.log(`acquired lock shown after ${shown} ms (refresh ${REFRESH} ms)`);
  assert.ok(shown <= 2 * REFRESH, `shown after ${shown} ms, more than 2 refresh intervals`);
  assert.equal(await page.evaluate(() => window.__notReloaded), true);

  // Release: it disappears, and the feed shows the release.
  cli('release', 'build:web', '--summary', 'deployed');
  t0 = Date.now();
  await page.waitForFunction(() => ![...document.querySelectorAll('#locks tbody tr')]
    .some((tr) => tr.getAttribute('data-key') === 'build:web'), { timeout: 10000, polling: 'mutation' });
  console.log(`released lock gone after ${Date.now() - t0} ms`);
  await page.waitForFunction(() => [...document.querySelectorAll('#feed li')]
    .some((li) => li.getAttribute('data-event') === 'released' && li.textContent.includes('build:web') &&
      li.textContent.includes('deployed')), { timeout: 10000 });
  assert.equal(await page.evaluate(() => window.__notReloaded), true);

  // Hostile key and task metadata: text, never markup.
  const evil = '<img/src/onerror=alert(1)>';
  cli('acquire', evil, '--info', 'note=<img src=x onerror=alert(2)><script>alert(3)</script>',
    '--info', 'html=<b>bold</b>');
  await poll(() => rowFor(page, evil), 10000, 'the hostile key did not show');
  await page.waitForFunction((k) => [...document.querySelectorAll('#feed li')]
    .some((li) => li.textContent.includes(k)), { timeout: 10000 }, evil);
  const dom = await page.evaluate((k) => ({
    imgs: document.querySelectorAll('img').length,
    bolds: document.querySelectorAll('b').length,
    scripts: document.querySelectorAll('script').length,
    keyText: [...document.querySelectorAll('#locks td.key')].map((td) => td.firstChild.textContent).includes(k),
    title: [...document.querySelectorAll('#locks td.key')].map((td) => td.title).join(' '),
  }), evil);
  assert.equal(dom.imgs, 0, 'an <img> element appeared');
  assert.equal(dom.bolds, 0, 'a <b> element appeared');
  assert.equal(dom.scripts, 1, 'a <script> element appeared');
  assert.ok(dom.keyText, 'the key is not shown as text');
  assert.ok(dom.title.includes('<script>alert(3)</script>'), 'the metadata is not shown as text');
  await new Promise((r) => setTimeout(r, REFRESH));
  assert.deepEqual(dialogs, [], 'a dialog opened');

  // Admin: the button force-releases with the token.
  assert.equal(await page.$eval('#admin', (e) => e.hidden), false);
  await page.type('#token', TOKEN);
  const clickForce = (k) => page.evaluate((key) => {
    const tr = [...document.querySelectorAll('#locks tbody tr')].find((t) => t.getAttribute('data-key') === key);
    tr.querySelector('button.force').click();
  }, k);
  await clickForce(evil);
  await page.waitForFunction((key) => {
    const tr = [...document.querySelectorAll('#locks tbody tr')].find((t) => t.getAttribute('data-key') === key);
    return tr && tr.querySelector('button.force.confirm');
  }, { timeout: 5000 }, evil);
  await clickForce(evil);
  await poll(async () => !(await rowFor(page, evil)), 10000, 'the forced lock did not go');
  assert.equal(JSON.parse(cli('status', evil, '--json')).held, false);
  await page.waitForFunction(() => [...document.querySelectorAll('#feed li')]
    .some((li) => li.getAttribute('data-event') === 'forced'), { timeout: 10000 });
  assert.match(await page.$eval('#notice', (e) => e.textContent), /Force-released/);
  assert.deepEqual(dialogs, []);

  // Screenshots, light and dark: a few locks, one stale, one with a waiter.
  cli('acquire', 'deploy:prod', '--info', 'ticket=OPS-1432', '--info', 'commit=9f3c2ab');
  cli('acquire', 'db:migrate', '--lock-timeout', '1s');
  cli('acquire', 'build/main');
  cli('-w', 'ci-runner-7@build-3', 'acquire', 'report:nightly');
  const waiter = startBackground(['-w', 'deploy-bot@ops-1', 'acquire', 'deploy:prod', '--wait', '60s']);
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('#locks tbody tr')];
    return rows.length >= 4 && rows.some((r) => r.classList.contains('stale')) &&
      document.querySelectorAll('#locks .waiters li').length >= 1;
  }, { timeout: 15000 });
  await page.evaluate(() => {
    document.getElementById('token').blur();
    document.getElementById('notice').hidden = true;
  });
  for (const scheme of ['light', 'dark']) {
    await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: scheme }]);
    await page.screenshot({ path: join(OUT, `serve-${scheme}.png`) });
  }
  await page.setViewport({ width: 390, height: 844, isMobile: true, hasTouch: true });
  await page.screenshot({ path: join(OUT, 'serve-phone.png') });
  await stop(waiter);

  // A read-only server: no admin field, no buttons.
  const ro = await startServe(['--refresh', REFRESH + 'ms']);
  const second = await openPage(ro.url);
  await poll(() => rowFor(second.page, 'deploy:prod'), 10000, 'the read-only page shows no locks');
  assert.equal(await second.page.$$eval('button.force', (b) => b.length), 0);
  assert.equal(await second.page.$eval('#admin', (e) => e.hidden), true);

  // The server goes away: the page says so.
  assert.equal(await stop(ro.child), 0);
  await second.page.waitForFunction(() => {
    const b = document.getElementById('banner');
    return !b.hidden && b.textContent.includes('Cannot reach');
  }, { timeout: 10000 });
  assert.equal(await stop(serve.child), 0);
  assert.deepEqual(errors, []);
  assert.deepEqual(second.errors, []);
  console.log('screenshots: ' + join(OUT, 'serve-light.png') + ', serve-dark.png, serve-phone.png');
  for (const k of ['deploy:prod', 'db:migrate', 'build/main']) cli('release', k);
  void BIN;
});

/**
 * The dashboard in a real browser: Debian's Chromium, headless, driven by playwright-core,
 * against a real RMS, PostgreSQL and RabbitMQ. An operator signs in with the admin token,
 * finds a DEAD message, reads why it died (the check-backs, each delivery round's time and
 * transport, the consumer's reasons), resends it and sees it complete.
 *
 * Set-up: `scripts/infra-up.sh` installs Chromium (`apt-get install chromium`); when it is
 * missing and this process may run apt-get (root), the test installs it itself. With
 * `RMS_SCREENSHOTS_DIR` set (`npm run screenshots` sets docs/dashboard), the main views are
 * saved there as PNG files.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { type BrowserContext, type Page, chromium } from 'playwright-core';
import { startCheckBackProducer } from '../support/check-back-producer.js';
import type { HttpRecorder } from '../support/http-recorder.js';
import { QueueWatcher, type SeenDelivery } from '../support/rabbitmq.js';
import { TEST_APPS, startTestServer, type TestServer } from '../support/rms-server.js';
import { waitUntil } from '../support/wait.js';

const CHROMIUM = '/usr/bin/chromium';
/** The flags the browser runs with: headless, no sandbox (CI runs as root), and nothing that reaches the network by itself. */
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const SCREENSHOTS = process.env['RMS_SCREENSHOTS_DIR'];

/** Installs Debian's Chromium when it is missing and this process may; otherwise says why the test cannot run. */
async function ensureChromium(): Promise<string | false> {
  if (existsSync(CHROMIUM)) return false;
  if (process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get')) return `${CHROMIUM} is missing: run scripts/infra-up.sh (apt-get install chromium)`;
  const run = promisify(execFile);
  await run('apt-get', ['update'], { timeout: 300_000 });
  await run('apt-get', ['install', '-y', 'chromium'], { timeout: 600_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  return existsSync(CHROMIUM) ? false : `installing chromium gave no ${CHROMIUM}`;
}

const cannotRun = await ensureChromium();

describe('the dashboard in a real browser', { skip: cannotRun, timeout: 120_000 }, () => {
  let rms: TestServer;
  let producer: HttpRecorder;
  let watcher: QueueWatcher;
  let context: BrowserContext;
  let page: Page;
  let userDataDir: string;
  const topic = `dashboard.${randomUUID().slice(0, 8)}`;
  const seen: SeenDelivery[] = [];
  const key = `order-${randomUUID().slice(0, 8)}`;
  let deadId: string;
  const pageErrors: string[] = [];

  const deliveriesOf = (id: string) => seen.filter((delivery) => delivery.id === id);
  const nack = (id: string, reason: string) =>
    rms.call('inventory', 'POST', `/v1/messages/${id}/nack`, { reason, attempt: deliveriesOf(id).at(-1)?.attempt });

  before(async () => {
    // The first check-back of every message is UNKNOWN, the second COMMIT.
    producer = await startCheckBackProducer((_key, count) => (count === 1 ? 'UNKNOWN' : 'COMMIT'));
    rms = await startTestServer({
      checkUrl: producer.url('/check'),
      env: {
        RMS_POLL_INTERVAL_MS: '20',
        RMS_CHECK_DELAY_MS: '50',
        RMS_CHECK_INTERVAL_MS: '50',
        RMS_CHECK_TIMEOUT_MS: '1000',
        RMS_PUBLISH_TIMEOUT_MS: '1000',
        RMS_RETRY_IMMEDIATE: '1',
        RMS_LEASE_MS: '3000',
        RMS_ACK_TIMEOUT_MS: '30000',
        RMS_RETRY_MAX: '2',
      },
    });
    watcher = await QueueWatcher.open();
    await watcher.consume(topic, (delivery) => void seen.push(delivery));

    // A message the producer leaves to check-back, that the consumer fails twice: DEAD.
    const prepared = await rms.call('orders', 'POST', '/v1/messages', { topic, payload: { orderId: 42, sku: 'A-1', qty: 3 }, messageId: key, headers: { tenant: 'acme' } });
    deadId = prepared.body.id;
    await waitUntil(() => deliveriesOf(deadId).length === 1, 'the first delivery');
    await nack(deadId, 'StockError: sku A-1 has no stock row in warehouse 7');
    await waitUntil(() => deliveriesOf(deadId).length === 2, 'the second delivery');
    assert.equal((await nack(deadId, 'StockError: sku A-1 has no stock row in warehouse 7')).body.status, 'DEAD');
    // Some company for the lists: a completed message and one waiting for its check-back.
    const done = await rms.call('billing', 'POST', '/v1/messages', { topic: `${topic}.invoices`, payload: { invoice: 7 } });
    await rms.call('billing', 'POST', `/v1/messages/${done.body.id}/confirm`);
    await rms.call('orders', 'POST', '/v1/messages', { topic, payload: { orderId: 43 }, messageId: `order-${randomUUID().slice(0, 8)}` });

    userDataDir = mkdtempSync(join(tmpdir(), 'rms-dashboard-chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_FLAGS,
      viewport: { width: 1360, height: 900 },
      timeout: 60_000,
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(15_000);
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.on('console', (message) => {
      // The refused sign-in and search are expected failed requests; anything else is a defect.
      if (message.type() === 'error' && !/^Failed to load resource: the server responded with a status of 40[01] /.test(message.text())) pageErrors.push(message.text());
    });
  });

  after(async () => {
    await context?.close();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
    await rms?.stop();
    await producer?.close();
    await watcher?.deleteQueues([topic]);
    await watcher?.close();
  });

  async function screenshot(name: string): Promise<void> {
    if (!SCREENSHOTS) return;
    mkdirSync(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
  }

  test('a wrong token is refused on the sign-in page, the admin token signs in and stays out of the address', async () => {
    await page.goto(`${rms.baseUrl}/dashboard`);
    await page.fill('#token', 'not-a-token');
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#notice:not([hidden])');
    assert.match(await page.textContent('#notice') ?? '', /unknown token/);
    assert.equal(await page.isVisible('#login-view'), true);

    await page.fill('#token', TEST_APPS.ops.token);
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#overview-view:not([hidden]) #totals .card.dead');
    assert.ok(!page.url().includes(TEST_APPS.ops.token), 'the token is not in the URL');
    const stored = await page.evaluate("({ session: sessionStorage.getItem('rms-admin-token'), local: localStorage.length, cookies: document.cookie })");
    assert.deepEqual(stored, { session: TEST_APPS.ops.token, local: 0, cookies: '' });
    const deadCard = await page.textContent('#totals .card.dead .count');
    assert.ok(Number(deadCard) >= 1, `the DEAD card counts the dead message, shows ${deadCard}`);
    assert.match(await page.textContent('#by-topic') ?? '', new RegExp(topic.replaceAll('.', '\\.')));
    assert.match(await page.textContent('#failover') ?? '', /rabbitmq/);
    assert.match(await page.textContent('#degrade') ?? '', /normal: RabbitMQ/);
    await screenshot('overview');
  });

  test('the operator finds the DEAD message by the producer’s key and reads why it died', async () => {
    await page.click('#nav a[data-view=messages]');
    await page.waitForSelector('#messages-view:not([hidden])');
    await page.fill('#search-form input[name=messageId]', key);
    await page.selectOption('#search-form select[name=status]', 'DEAD');
    await page.click('#search-form button[type=submit]');
    await page.waitForSelector(`#results tr[data-id="${deadId}"]`);
    assert.equal(await page.locator('#results tbody tr').count(), 1);
    assert.equal(await page.isVisible('#bulk-confirm'), false);
    assert.match(await page.textContent(`#results tr[data-id="${deadId}"]`) ?? '', /DEAD \(DELIVERY_EXHAUSTED\).*consumer inventory: StockError/);
    assert.ok(!page.url().includes(TEST_APPS.ops.token));
    await screenshot('messages');

    await page.click(`#results tr[data-id="${deadId}"] a`);
    await page.waitForSelector('#message-view:not([hidden]) #history tbody tr[data-type=dead]');
    assert.match(await page.textContent('#payload') ?? '', /"sku": "A-1"/);
    assert.match(await page.textContent('#headers') ?? '', /"tenant": "acme"/);
    const rows = await page.$$eval('#history tbody tr', (trs) =>
      trs.map((tr) => ({ type: tr.getAttribute('data-type'), cells: [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '') })),
    );
    const ofType = (type: string) => rows.filter((row) => row.type === type);
    // Columns: Time, Event, By, Attempt, Transport, Outcome, Took, Reason, Next due.
    assert.deepEqual(ofType('check-back').map((row) => row.cells[5]), ['UNKNOWN', 'COMMIT'], 'the check-backs and their verdicts');
    for (const row of ofType('check-back')) assert.match(row.cells[6] ?? '', /^\d+ ms$/, 'each check-back with its duration');
    const rounds = ofType('delivery');
    assert.deepEqual(rounds.map((row) => [row.cells[3], row.cells[4], row.cells[5]]), [['1', 'rabbitmq', 'published'], ['2', 'rabbitmq', 'published']], 'each round with its transport');
    for (const row of rounds) assert.ok(row.cells[0] && row.cells[0] !== '–', 'each round with its time');
    const failures = ofType('consumer-failure');
    assert.equal(failures.length, 2);
    for (const row of failures) {
      assert.match(row.cells[2] ?? '', /^consumer inventory( \(group \S+\))?$/);
      assert.equal(row.cells[7], 'StockError: sku A-1 has no stock row in warehouse 7', 'the consumer’s reason');
    }
    assert.match(ofType('dead')[0]?.cells[5] ?? '', /DELIVERY_EXHAUSTED/);
    await screenshot('message-dead');
  });

  test('the operator resends it and sees it complete, with the earlier rounds still in its history', async () => {
    const before = await page.locator('#history tbody tr').count();
    await page.click('#resend');
    await waitUntil(() => deliveriesOf(deadId).length === 3, 'the resent message is delivered');
    const ack = await rms.call('inventory', 'POST', `/v1/messages/${deadId}/ack`);
    assert.equal(ack.body.status, 'COMPLETED');
    // The page shows a message on its way again by itself until it settles.
    await page.waitForSelector('#message-title .badge.completed', { timeout: 20_000 });
    await page.waitForSelector('#history tbody tr[data-type=acked]');
    const types = await page.$$eval('#history tbody tr', (trs) => trs.map((tr) => tr.getAttribute('data-type')));
    assert.ok(types.length >= before + 3);
    assert.deepEqual(types.slice(before), ['resent', 'delivery', 'acked']);
    assert.equal(await page.isVisible('#resend'), false, 'a completed message cannot be resent');
    await screenshot('message-completed');
  });

  test('bulk resend from the search shows the dry-run count first; bad input shows the API’s reason; no script error anywhere', async () => {
    await page.goto(`${rms.baseUrl}/dashboard#/messages?topic=${encodeURIComponent(topic)}`);
    await page.waitForSelector('#results tbody tr');
    assert.equal(await page.isVisible('#bulk-confirm'), false, 'nothing asks for confirmation before the dry run');
    await page.click('#bulk-resend');
    await page.waitForSelector('#bulk-confirm:not([hidden])');
    assert.match(await page.textContent('#bulk-text') ?? '', /^0 DEAD message\(s\) match; 0 can be resent/);
    assert.equal(await page.isVisible('#bulk-go'), false);
    await page.click('#bulk-cancel');

    await page.fill('#search-form input[name=producer]', 'not an app!');
    await page.click('#search-form button[type=submit]');
    await page.waitForSelector('#notice.error:not([hidden])');
    assert.match(await page.textContent('#notice') ?? '', /INVALID_REQUEST: .*producer/);
    assert.deepEqual(pageErrors, [], 'no script errors on the page');
  });
});

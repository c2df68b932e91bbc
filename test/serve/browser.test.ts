// `glayer serve` driven as a person would, in Debian's headless chromium through playwright-core: open the
// printed URL, pick a stack, a layer, a file, read its diff and blame, compare two layers, search, and check what
// the page shows against the CLI's --json on the same store. GLAYER_SCREENSHOTS=DIR keeps screenshots there.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { glayerOk } from '../helpers/cli.js';
import { launchChromium, serveFixture, startServe, type Served, type ServeFixture } from '../helpers/serve.js';

let fx: ServeFixture;
let s: Served;
let browser: Browser;
let page: Page;
const problems: string[] = [];
const shots = process.env.GLAYER_SCREENSHOTS;

const cli = async (cmd: string, ...argv: string[]) => JSON.parse((await glayerOk(fx.ws, cmd, '--json', ...argv)).stdout);
const rowPaths = (p: Page) => p.$$eval('section.tree-panel .vlist [data-path]', (els) => els.map((e) => [e.getAttribute('data-path'), e.getAttribute('data-change')] as [string | null, string | null]));

test.before(async () => {
  fx = await serveFixture();
  s = await startServe(fx.ws);
  browser = await launchChromium();
  const ctx = await browser.newContext({ viewport: { width: 1360, height: 820 } });
  page = await ctx.newPage();
  // Any error in the page (a CSP violation is one) fails the last test.
  page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('request', (r) => { if (!r.url().startsWith(s.url)) problems.push(`request outside the server: ${r.url()}`); });
});
test.after(async () => { await browser?.close(); await s?.stop(); });

test('opening the printed URL lists the stacks and the current stack\'s layers, as the CLI does', async () => {
  await page.goto(s.openUrl);
  await page.waitForSelector('a.layer[data-layer]:not([data-layer="upper"])');
  assert.not.match(page.url(), /token=/, 'the token left the address bar');
  const stacks = await page.$$eval('a.stack[data-stack]', (els) => els.map((e) => e.getAttribute('data-stack')));
  assert.equal(stacks, (await cli('stacks')).map((x: { name: string }) => x.name));
  const layers = await page.$$eval('a.layer[data-layer]', (els) => els.map((e) => e.getAttribute('data-layer')));
  assert.equal(layers, ['upper', ...(await cli('log')).map((l: { id: string }) => l.id)]);
  // The log table of the stack page: one row per layer, with its message.
  const messages = await page.$$eval('[data-testid=log] tbody tr td:last-child', (els) => els.map((e) => e.textContent));
  assert.equal(messages, (await cli('log')).map((l: { message: string }) => l.message.split('\n')[0]));
  assert.ok(await page.isVisible('.tag:has-text("v1.0")'), 'the tag is shown');
  // dive's figures of the stack (`glayer efficiency`): the panel's score and its offenders are the CLI's.
  await page.waitForSelector('[data-testid=efficiency]');
  const eff = await cli('efficiency');
  const cards = await page.$$eval('[data-testid=efficiency] .card .big', (els) => els.map((e) => e.textContent));
  assert.is(cards[0], `${(eff.efficiency * 100).toFixed(1)}%`);
  const offenders = await page.$$eval('[data-testid=efficiency] tbody tr td:first-child', (els) => els.map((e) => e.textContent));
  assert.equal(offenders, eff.paths.slice(0, 10).map((p: { path: string }) => p.path));
  if (shots) await page.screenshot({ path: join(shots, 'serve-stack.png') });
});

test('another stack shows its own layers', async () => {
  await page.click('a.stack[data-stack="other"]');
  await page.waitForFunction(() => location.hash.startsWith('#/stack/other'));
  await page.waitForSelector(`a.layer[data-layer="${fx.layers[1]}"]`);
  const layers = await page.$$eval('a.layer[data-layer]', (els) => els.map((e) => e.getAttribute('data-layer')));
  assert.equal(layers, fx.layers.slice(1), 'no writable layer for a stack that is not checked out');
  await page.click('a.stack[data-stack="main"]');
  await page.waitForSelector('a.layer[data-layer="upper"]');
});

test('a layer shows the union as of it with its own changes marked; the marks match `glayer diff --name-status`', async () => {
  const mid = fx.layers[1];
  await page.click(`a.layer[data-layer="${mid}"]`);
  await page.waitForSelector(`section.tree-panel[data-tree="${mid}"] .vlist [data-path]`);
  const rows = await rowPaths(page);
  const marked = new Map(rows.filter(([, c]) => c).map(([p, c]) => [p, c]));
  assert.is(marked.get('etc/nginx/nginx.conf'), 'C');
  assert.is(marked.get('etc/hostname'), 'D');
  assert.is(marked.get('etc/motd'), 'A');
  const files = (await cli('diff', 'HEAD~1')) as Array<{ path: string; change: string }>;
  for (const f of files) assert.is(marked.get(f.path), f.change === 'M' ? 'C' : f.change, f.path);
  const count = await page.textContent('[data-testid=tree-count]');
  const tree = (await (await page.request.get(`${s.url}api/tree?layer=${mid}`)).json()) as { entries: unknown[] };
  assert.is(count, `${tree.entries.length} of ${tree.entries.length} entries`);
});

test('a file: its diff against the layer below (diff2html), its content, its blame', async () => {
  const mid = fx.layers[1];
  await page.click('[data-path="etc/nginx/nginx.conf"]');
  await page.waitForFunction(() => location.hash.includes('path=etc%2Fnginx%2Fnginx.conf'));
  await page.click('button[data-tab="diff"]');
  await page.waitForSelector('.d2h-file-wrapper');
  const inserted = await page.$$eval('.d2h-ins .d2h-code-line-ctn', (els) => els.map((e) => e.textContent));
  assert.ok(inserted.includes('worker_processes 4;'), JSON.stringify(inserted));
  assert.is(await page.textContent('[data-testid=file-path]').then((t) => t!.trim().startsWith('etc/nginx/nginx.conf')), true);
  if (shots) await page.screenshot({ path: join(shots, 'serve-diff.png') });

  await page.click('button[data-tab="content"]');
  await page.waitForSelector('[data-testid=file-content]');
  const text = await page.$$eval('[data-testid=file-content] .line', (els) => els.map((e) => (e.lastChild as Text).textContent!.replace(/\n$/, '')));
  assert.ok(text.includes('worker_processes 4;'));

  await page.click('button[data-tab="blame"]');
  await page.waitForSelector('[data-testid=blame] tbody tr');
  const blamed = await page.$$eval('[data-testid=blame] tbody tr td:first-child a', (els) => els.map((e) => e.textContent));
  const want = (await cli('blame', 'etc/nginx/nginx.conf')).entries.map((e: { id: string }) => e.id.slice(0, 12));
  assert.equal(blamed, want);
  // Blame is from this layer down: the current one is highlighted.
  assert.is(await page.$eval('[data-testid=blame] tr.current td a', (e) => e.textContent), mid.slice(0, 12));
});

test('a deleted file shows its content from the layer below, and a binary file is summarized', async () => {
  await page.click('[data-path="etc/hostname"]');
  await page.click('button[data-tab="content"]');
  await page.waitForSelector('.note:has-text("Deleted by this layer")');
  await page.click('[data-path="etc/blob.bin"]');
  await page.waitForSelector('.file-body :text("Binary file")');
});

test('search by path and "changes only" filter the tree', async () => {
  await page.fill('#search', 'nginx');
  await page.waitForFunction(() => !document.querySelector('[data-testid=tree-count]')!.textContent!.startsWith(document.querySelector('[data-testid=tree-count]')!.textContent!.split(' of ')[1]));
  let rows = await rowPaths(page);
  assert.ok(rows.length > 0);
  for (const [p] of rows) assert.ok(p!.includes('nginx') || 'etc/nginx'.startsWith(p!), `${p} does not match`);
  assert.match(page.url(), /q=nginx/);
  await page.fill('#search', '');
  await page.check('#only-changes');
  await page.waitForFunction(() => location.hash.includes('only=1'));
  rows = await rowPaths(page);
  const changed = rows.filter(([, c]) => c).map(([p]) => p);
  assert.ok(changed.includes('etc/hostname') && changed.includes('etc/nginx/nginx.conf'));
  for (const [p, c] of rows) assert.ok(c || changed.some((q) => q!.startsWith(p + '/')), `${p} is neither changed nor above a change`);
  await page.uncheck('#only-changes');
});

test('the writable layer\'s pending changes, not yet recorded by any command, show as a layer', async () => {
  await page.click('a.layer[data-layer="upper"]');
  await page.waitForSelector('section.tree-panel[data-tree="upper"] .vlist [data-path]');
  const rows = new Map(await rowPaths(page));
  assert.is(rows.get('srv/www/new.html'), 'A');
  assert.is(rows.get('etc/motd'), 'C');
});

test('compare two layers: the same file list as `glayer diff A B`, and a rendered diff', async () => {
  await page.click('[data-nav="compare"]');
  await page.waitForSelector('#compare-from');
  await page.selectOption('#compare-from', fx.layers[2]);
  await page.selectOption('#compare-to', fx.layers[0]);
  await page.waitForFunction(([a, b]) => location.hash.includes(`from=${a}`) && location.hash.includes(`to=${b}`), [fx.layers[2], fx.layers[0]]);
  await page.waitForSelector('[data-testid=compare-count]');
  const listed = await page.$$eval('.compare .vlist [data-path]', (els) => els.map((e) => e.getAttribute('data-path')));
  const want = (await cli('diff', 'HEAD~2', 'HEAD')).map((f: { path: string }) => f.path);
  assert.equal(listed, want);
  await page.click('.compare .vlist [data-path="etc/motd"]');
  await page.waitForSelector('.compare .d2h-file-wrapper');
  assert.ok((await page.textContent('.compare .d2h-file-wrapper'))!.includes('Welcome to glayer'));
  if (shots) await page.screenshot({ path: join(shots, 'serve-compare.png') });
});

test('deep links: a pasted URL opens the same view; without the token it is refused', async () => {
  const link = `${s.url}#/layer/${fx.layers[1]}?path=etc%2Fnginx%2Fnginx.conf&tab=blame`;
  const other = await page.context().newPage();
  await other.goto(link);
  await other.waitForSelector('[data-testid=blame] tbody tr');
  assert.is(await other.textContent('[data-testid=file-path]').then((t) => t!.trim().startsWith('etc/nginx/nginx.conf')), true);
  await other.close();
  const stranger = await browser.newContext();
  const p = await stranger.newPage();
  const r = await p.goto(link);
  assert.is(r!.status(), 401);
  await stranger.close();
});

test('the page loaded nothing from elsewhere and had no errors (CSP violations included)', () => {
  assert.equal(problems, []);
});

test.run();

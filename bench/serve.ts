/**
 * `npm run bench:serve`: the web page of `glayer serve` on the 20,000-file stack, measured in Debian's headless
 * chromium through playwright-core. Three figures, each over fresh pages (new browser context: no cookie, no
 * cache), medians with min and max:
 *   25. opening the URL until the page is interactive (stacks and the stack's layers listed, clickable);
 *   26. clicking a layer until its tree of 20,000+ entries is rendered (first rows in the virtualized list);
 *   27. switching to another layer (not seen before in that page) until its tree is rendered.
 * Times are measured in the page (performance marks the page sets when a view is on screen), not around
 * playwright's calls; the server's share comes from its Server-Timing header.
 * Usage: node --import tsx bench/serve.ts [--runs N] [--files N] [--json FILE]
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { content, ImportStream, makeEditSet, makeWorkload } from './workload.js';
import { git, glayer, glayerCli, stats, type Stats } from './proc.js';
import type { Page } from 'playwright-core';
import { launchChromium, startServe } from '../test/helpers/serve.js';
import { tmpdir } from '../test/helpers/tmp.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string): string => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : dflt; };
const RUNS = Number(opt('--runs', '7'));
const FILES = Number(opt('--files', '20000'));
const SEED = 20261128;

function fastImport(gitdir: string, s: ImportStream): void {
  s.close();
  const fd = fs.openSync(s.file, 'r');
  try { git(['--git-dir', gitdir, 'fast-import', '--quiet'], { input: fd }); } finally { fs.closeSync(fd); fs.rmSync(s.file, { force: true }); }
}

const base = tmpdir('glayer-bench-serve-');
glayerCli.bin = join(process.cwd(), 'bin', 'glayer');
const w = makeWorkload(SEED, { files: FILES, top: 20, sub: 10 });
const ws = join(base, 'ws');
glayer(base, ['init', ws]);
const gitdir = join(ws, '.glayer');
// Three layers: the tree; 1,000 files rewritten, 100 deleted, 100 added; 100 more rewritten.
const s = new ImportStream(join(base, 'stack.fi'));
let mark = 1;
w.files.forEach((f) => s.blob(mark++, content(w, f)));
const baseEntries = w.files.map((f, i): [string, string, string] => [f.mode, `:${i + 1}`, f.path]);
const c1 = mark++;
s.commit('refs/heads/main', c1, null, `base: ${FILES.toLocaleString('en')} files`, baseEntries);
const e1 = makeEditSet(w, SEED + 1, 1000, 100, 100);
const l2: Array<[string, string, string]> = [];
for (const f of e1.modified) { s.blob(mark, content(w, f, 1)); l2.push([f.mode, `:${mark++}`, f.path]); }
for (const f of e1.added) { s.blob(mark, content(w, f, 0)); l2.push([f.mode, `:${mark++}`, f.path]); }
const empty = mark++;
s.blob(empty, Buffer.alloc(0));
for (const f of e1.deleted) { const i = f.path.lastIndexOf('/'); l2.push(['100644', `:${empty}`, `${f.path.slice(0, i)}/.wh.${f.path.slice(i + 1)}`]); }
const c2 = mark++;
s.commit('refs/heads/main', c2, `:${c1}`, 'rewrite 1,000 files, delete 100, add 100', l2);
const e2 = makeEditSet(w, SEED + 2, 100, 0, 0);
const l3: Array<[string, string, string]> = [];
for (const f of e2.modified) { s.blob(mark, content(w, f, 2)); l3.push([f.mode, `:${mark++}`, f.path]); }
s.commit('refs/heads/main', mark++, `:${c2}`, 'rewrite 100 files', l3);
fastImport(gitdir, s);
// The union cache a workspace has after its commits (glayer commit and mount-view write it).
glayer(ws, ['diff', 'HEAD~2', 'HEAD', '--name-only']);
glayer(ws, ['diff', 'HEAD~1', '--name-only']);
const layers = git(['--git-dir', gitdir, 'rev-list', '--first-parent', 'refs/heads/main']).stdout.trim().split('\n');
console.log(`stack ready: ${layers.length} layers, ${FILES} files in the base`);

const served = await startServe(ws);
const browser = await launchChromium();
const open: number[] = [];
const tree: number[] = [];
const sw: number[] = [];
const back: number[] = [];
// Of 26 and 27: the server's time for the tree request (Server-Timing) and the page's own time after the response.
const treeServer: number[] = [];
const treePage: number[] = [];
const swServer: number[] = [];
const swPage: number[] = [];
const viaCdp: number[] = [];
let entries = 0;

/** Measured in the page: from the click on a layer to the mark the tree panel sets once that tree is on screen. */
async function clickLayer(page: Page, id: string): Promise<{ ms: number; server: number; after: number }> {
  await page.evaluate(() => { (window as unknown as { clickAt: number }).clickAt = 0; document.addEventListener('click', () => { (window as unknown as { clickAt: number }).clickAt = performance.now(); }, { capture: true, once: true }); });
  await page.click(`a.layer[data-layer="${id}"]`);
  await page.waitForFunction((m) => performance.getEntriesByName(m).length > 0, `glayer:tree:${id}`);
  return page.evaluate((layer) => {
    const mark = performance.getEntriesByName(`glayer:tree:${layer}`).pop()!;
    const res = (performance.getEntriesByType('resource') as PerformanceResourceTiming[]).filter((r) => r.name.includes(`/api/tree?layer=${layer}`)).pop();
    const clickAt = (window as unknown as { clickAt: number }).clickAt;
    return { ms: mark.startTime - clickAt, server: res?.serverTiming.find((t) => t.name === 'app')?.duration ?? 0, after: res ? mark.startTime - res.responseEnd : 0 };
  }, id);
}

try {
  for (let r = 0; r < RUNS + 1; r++) {
    const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await ctx.newPage();
    const t = performance.now();
    await page.goto(served.openUrl);
    await page.waitForFunction(() => performance.getEntriesByName('glayer:layers:main').length > 0);
    const cdp = performance.now() - t;
    // 25: from the start of the navigation (timeOrigin: the request with the token, its redirect included) to the
    // mark the sidebar sets when the stack's layers are listed (clickable).
    const tOpen = await page.evaluate(() => performance.getEntriesByName('glayer:layers:main')[0].startTime);
    const [a, b] = r % 2 ? [layers[0], layers[1]] : [layers[1], layers[0]];
    const x = await clickLayer(page, a);
    entries = Number((await page.textContent('[data-testid=tree-count]'))!.split(' of ')[1].replace(/\D/g, ''));
    const y = await clickLayer(page, b);
    const z = await clickLayer(page, a);
    await ctx.close();
    if (r === 0) { console.log(`warm-up: open ${tOpen.toFixed(0)} ms, tree ${x.ms.toFixed(0)} ms, switch ${y.ms.toFixed(0)} ms`); continue; }
    open.push(tOpen); tree.push(x.ms); sw.push(y.ms); back.push(z.ms); viaCdp.push(cdp);
    treeServer.push(x.server); treePage.push(x.after); swServer.push(y.server); swPage.push(y.after);
  }
} finally {
  await browser.close();
  await served.stop();
}
const fmt = (x: Stats): string => `${x.median.toFixed(0)} ms (${x.min.toFixed(0)}..${x.max.toFixed(0)} ms)`;
const rows: Array<[number, string, Stats, number]> = [
  [25, 'serve: open the URL until the page is interactive', stats(open), 1000],
  [26, `serve: a layer's tree of ${entries.toLocaleString('en')} entries rendered`, stats(tree), 1000],
  [27, 'serve: switch to another layer (tree rendered)', stats(sw), 300],
];
console.log(`\n${RUNS} runs each, load average ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}\n`);
console.log('| # | operation | median (min..max) | target | met |\n|---|---|---|---|---|');
for (const [n, label, st, target] of rows) console.log(`| ${n} | ${label} | ${fmt(st)} | <= ${target} ms | ${st.median <= target ? 'yes' : 'NO'} |`);
console.log(`\n  row 25: measured from this process instead (goto until the layers are listed): ${fmt(stats(viaCdp))}`);
console.log(`  row 26: of which the server (Server-Timing of /api/tree): ${fmt(stats(treeServer))}; the page after the response (parse, tree model, render): ${fmt(stats(treePage))}`);
console.log(`  row 27: of which the server: ${fmt(stats(swServer))}; the page after the response: ${fmt(stats(swPage))}`);
console.log(`  row 27: back to the first layer (already loaded in the page): ${fmt(stats(back))}`);
const jsonFile = opt('--json', '');
if (jsonFile) fs.writeFileSync(jsonFile, JSON.stringify(rows.map(([n, label, st, target]) => ({ row: n, label, ...st, target })), null, 2));


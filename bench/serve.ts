/**
 * `npm run bench:serve`: the web page of `glayer serve` on the 20,000-file stack, measured in Debian's headless
 * chromium through playwright-core. Three figures, each over fresh pages (new browser context: no cookie, no
 * cache), medians with min and max:
 *   25. opening the URL until the page is interactive (stacks and the stack's layers listed, clickable);
 *   26. clicking a layer until its tree of 20,000+ entries is rendered (first rows in the virtualized list);
 *   27. switching to another layer (not seen before in that page) until its tree is rendered.
 * Times are taken in this process around playwright's calls, so they include one DevTools round trip each.
 * Usage: node --import tsx bench/serve.ts [--runs N] [--files N] [--json FILE]
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { content, ImportStream, makeEditSet, makeWorkload } from './workload.js';
import { git, glayer, glayerCli, run, stats, type Stats } from './proc.js';
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
let entries = 0;
try {
  for (let r = 0; r < RUNS + 1; r++) {
    const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await ctx.newPage();
    let t = performance.now();
    await page.goto(served.openUrl);
    await page.waitForSelector(`a.layer[data-layer="${layers[layers.length - 1]}"]`);
    const tOpen = performance.now() - t;
    // 26: the base layer's tree.
    const [a, b] = r % 2 ? [layers[0], layers[1]] : [layers[1], layers[0]];
    t = performance.now();
    await page.click(`a.layer[data-layer="${a}"]`);
    await page.waitForSelector(`section.tree-panel[data-tree="${a}"] .vlist [data-path]`);
    const tTree = performance.now() - t;
    entries = Number((await page.textContent('[data-testid=tree-count]'))!.split(' of ')[1].replace(/\D/g, ''));
    // 27: another layer.
    t = performance.now();
    await page.click(`a.layer[data-layer="${b}"]`);
    await page.waitForSelector(`section.tree-panel[data-tree="${b}"] .vlist [data-path]`);
    const tSwitch = performance.now() - t;
    t = performance.now();
    await page.click(`a.layer[data-layer="${a}"]`);
    await page.waitForSelector(`section.tree-panel[data-tree="${a}"] .vlist [data-path]`);
    const tBack = performance.now() - t;
    await ctx.close();
    if (r === 0) { console.log(`warm-up: open ${tOpen.toFixed(0)} ms, tree ${tTree.toFixed(0)} ms, switch ${tSwitch.toFixed(0)} ms`); continue; }
    open.push(tOpen); tree.push(tTree); sw.push(tSwitch); back.push(tBack);
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
console.log(`\n  row 27: back to the first layer (already loaded in the page): ${fmt(stats(back))}`);
const jsonFile = opt('--json', '');
if (jsonFile) fs.writeFileSync(jsonFile, JSON.stringify(rows.map(([n, label, st, target]) => ({ row: n, label, ...st, target })), null, 2));
void run;

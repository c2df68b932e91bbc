/**
 * The page of `glayer serve`: preact components written with htm (tagged templates, no build-time JSX), bundled
 * with diff2html by scripts/bundle.mjs into dist/web/app.js. Routes live in the URL's fragment so that every view
 * can be pasted into a review: #/stack/NAME, #/layer/ID?path=P&tab=diff&only=1&q=TEXT, #/compare?from=A&to=B&path=P.
 * It reads the JSON API of src/serve/server.ts and nothing else (the CSP allows nothing else).
 */
import { h, render } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import htm from 'htm';
import { html as diff2html } from 'diff2html';

const html = htm.bind(h);

// ---- data ------------------------------------------------------------------------------------------------------

interface LayerInfo { id: string; parent: string | null; author: { name: string; email: string }; date: string; message: string; added: number; changed: number; deleted: number; bytes: number }
interface StackInfo { name: string; ref: string; current: boolean; remote: boolean; top: string; layers: number; upstream: string | null; shares: Array<{ with: string; layers: number; top: string }> }
interface Info { root: string; store: string; ref: string; head: string | null; upper: string; view: string | null; layers: number }
interface StatusItem { path: string; change: 'A' | 'C' | 'D'; kind: string }
interface TreeItem { path: string; kind: string; size: number; change: 'A' | 'C' | 'D' | 'M' | null }
interface TreeResult { layer: string; below: string | null; entries: TreeItem[]; counts: { added: number; changed: number; deleted: number; metadata: number }; bytes: number }
interface Side { kind: string; mode: string; oid: string; size: number | null }
interface Hunk { oldStart: number; oldLines: number; newStart: number; newLines: number; heading: string; lines: string[] }
interface FileDiff { path: string; change: 'A' | 'M' | 'D'; typeChange: boolean; old: Side | null; new: Side | null; binary: boolean; skipped: null | string; added: number; deleted: number; hunks: Hunk[] }
interface DiffResult { from: { name: string; id: string | null }; to: { name: string; id: string | null }; count: number; files: FileDiff[] }
interface FileResult { layer: string; path: string; kind: string; mode: string; oid: string; size: number; binary: boolean; text: string | null; truncated: boolean; limit: number; entries: string[] | null }
interface BlameEntry { id: string; date: string; message: string; change: 'A' | 'C' | 'D'; kind: string; size: number | null; files: { added: number; changed: number; deleted: number } }
interface BlameResult { path: string; entries: BlameEntry[] }
interface Tag { name: string; id: string }
interface Efficiency {
  top: string | null; layers: number; totalBytes: number; unionBytes: number; wastedBytes: number; efficiency: number;
  userBytes: number; userWastedPercent: number;
  paths: Array<{ path: string; count: number; bytes: number; wastedBytes: number; layers: string[] }>;
  perLayer: Array<{ id: string; message: string; bytes: number; wastedBytes: number }>;
}

class ApiError extends Error { constructor(message: string, readonly code: string, readonly status: number) { super(message); } }

const cache = new Map<string, Promise<unknown>>();
/** GET /api/NAME?query, memoized per URL (the store does not change under a read-only page, but `status` does). */
function api<T>(name: string, query: Record<string, string | undefined> = {}, fresh = false): Promise<T> {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) q.set(k, v);
  const url = `/api/${name}${[...q].length ? '?' + q : ''}`;
  if (!fresh && cache.has(url)) return cache.get(url) as Promise<T>;
  const p = fetch(url, { credentials: 'same-origin' }).then(async (r) => {
    const body = await r.json();
    if (!r.ok) throw new ApiError(body?.error?.message ?? r.statusText, body?.error?.code ?? 'E_HTTP', r.status);
    return body as T;
  });
  cache.set(url, p);
  p.catch(() => cache.delete(url));
  return p;
}

/** A value loaded from the API (null while loading), with the error if it failed. */
function useApi<T>(name: string | null, query: Record<string, string | undefined> = {}, fresh = false): { data: T | null; error: Error | null } {
  const key = name === null ? null : name + JSON.stringify(query);
  const [state, setState] = useState<{ key: string | null; data: T | null; error: Error | null }>({ key: null, data: null, error: null });
  useEffect(() => {
    if (name === null) return;
    let live = true;
    api<T>(name, query, fresh).then((data) => { if (live) setState({ key, data, error: null }); }, (error: Error) => { if (live) setState({ key, data: null, error }); });
    return () => { live = false; };
  }, [key]);
  return state.key === key ? state : { data: null, error: null };
}

// ---- routes ----------------------------------------------------------------------------------------------------

interface Route { parts: string[]; q: URLSearchParams }

function parseRoute(): Route {
  const hash = decodeURI(location.hash.replace(/^#/, '')) || '/';
  const i = hash.indexOf('?');
  const path = i < 0 ? hash : hash.slice(0, i);
  return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), q: new URLSearchParams(i < 0 ? '' : hash.slice(i + 1)) };
}

function href(path: string, q: Record<string, string | undefined | null> = {}): string {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== null && v !== '') s.set(k, v);
  const qs = s.toString();
  return '#' + path + (qs ? '?' + qs : '');
}

function useRoute(): Route {
  const [route, setRoute] = useState(parseRoute());
  useEffect(() => {
    const on = (): void => setRoute(parseRoute());
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}

/** Change some query parameters of the current route (replacing the history entry for typing, pushing for clicks). */
function setQuery(change: Record<string, string | null>, replace = false): void {
  const r = parseRoute();
  const q: Record<string, string> = {};
  for (const [k, v] of r.q) q[k] = v;
  for (const [k, v] of Object.entries(change)) { if (v === null || v === '') delete q[k]; else q[k] = v; }
  const next = href('/' + r.parts.map(encodeURIComponent).join('/'), q);
  if (replace) history.replaceState(null, '', next); else history.pushState(null, '', next);
  window.dispatchEvent(new HashChangeEvent('hashchange'));
}

// ---- formatting ------------------------------------------------------------------------------------------------

function bytes(n: number | null): string {
  if (n === null) return '-';
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n / 1000;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) { v /= 1000; u++; }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}
const short = (id: string | null): string => (id ? id.slice(0, 12) : '');
const when = (iso: string): string => iso.replace('T', ' ').slice(0, 16);
const firstLine = (s: string): string => s.split('\n')[0];
const CHANGE_TITLE: Record<string, string> = { A: 'added', C: 'changed', D: 'deleted', M: 'metadata only', null: '' };

/** One file's diff as git's unified patch text, the input diff2html reads. */
function unified(f: FileDiff): string {
  const a = f.old ? `a/${f.path}` : '/dev/null';
  const b = f.new ? `b/${f.path}` : '/dev/null';
  let s = `diff --git a/${f.path} b/${f.path}\n`;
  if (f.change === 'A') s += `new file mode ${f.new!.mode}\n`;
  else if (f.change === 'D') s += `deleted file mode ${f.old!.mode}\n`;
  else if (f.old!.mode !== f.new!.mode) s += `old mode ${f.old!.mode}\nnew mode ${f.new!.mode}\n`;
  if (f.binary) return s + `Binary files ${a} and ${b} differ\n`;
  if (f.hunks.length === 0) return s;
  s += `--- ${a}\n+++ ${b}\n`;
  for (const hk of f.hunks) {
    s += `@@ -${hk.oldStart},${hk.oldLines} +${hk.newStart},${hk.newLines} @@${hk.heading ? ' ' + hk.heading : ''}\n`;
    s += hk.lines.join('\n') + '\n';
  }
  return s;
}

// ---- components ------------------------------------------------------------------------------------------------

function Loading({ what }: { what: string }) { return html`<div class="muted pad">Loading ${what}…</div>`; }
function Failed({ error }: { error: Error }) { return html`<div class="error pad" role="alert">${error.message}</div>`; }

function Counts({ a, c, d, m }: { a: number; c: number; d: number; m?: number }) {
  return html`<span class="counts"><span class="add">+${a}</span> <span class="chg">~${c}</span> <span class="del">-${d}</span>${m ? html` <span class="meta">m${m}</span>` : ''}</span>`;
}

/** A fixed-row-height list that renders only the rows in sight (20,000 rows scroll like 50). */
function VirtualList<T>({ items, rowHeight, row, scrollTo }: { items: T[]; rowHeight: number; row: (item: T, index: number) => unknown; scrollTo?: number }) {
  const ref = useRef<HTMLDivElement>(null);
  const [top, setTop] = useState(0);
  const [height, setHeight] = useState(800);
  useEffect(() => {
    const el = ref.current!;
    setHeight(el.clientHeight);
    const ro = new ResizeObserver(() => setHeight(el.clientHeight));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  useEffect(() => {
    const el = ref.current!;
    if (scrollTo === undefined || scrollTo < 0) return;
    const y = scrollTo * rowHeight;
    if (y < el.scrollTop || y > el.scrollTop + el.clientHeight - rowHeight) { el.scrollTop = Math.max(0, y - el.clientHeight / 3); setTop(el.scrollTop); }
  }, [scrollTo, items]);
  const overscan = 12;
  const start = Math.max(0, Math.floor(top / rowHeight) - overscan);
  const end = Math.min(items.length, Math.ceil((top + height) / rowHeight) + overscan);
  const rows = [];
  for (let i = start; i < end; i++) rows.push(row(items[i], i));
  return html`<div class="vlist" ref=${ref} onScroll=${(e: Event) => setTop((e.currentTarget as HTMLElement).scrollTop)}>
    <div class="vlist-space" style=${{ height: `${items.length * rowHeight}px` }}>
      <div class="vlist-rows" style=${{ transform: `translateY(${start * rowHeight}px)` }}>${rows}</div>
    </div>
  </div>`;
}

interface Node { item: TreeItem; index: number; depth: number; name: string; dir: boolean; changedInside: boolean }

/** The union as of a layer, dive-style: every entry with the layer's own changes marked. */
function TreePanel({ tree, layer, selected, only, query }: { tree: TreeResult; layer: string; selected: string | null; only: boolean; query: string }) {
  const [collapsed, setCollapsed] = useState<Set<string>>(new Set());
  const [text, setText] = useState(query);
  useEffect(() => setText(query), [query]);
  const nodes = useMemo<Node[]>(() => {
    const out: Node[] = tree.entries.map((item, index) => {
      const slash = item.path.lastIndexOf('/');
      let depth = 0;
      for (let k = 0; k < item.path.length; k++) if (item.path.charCodeAt(k) === 47) depth++;
      return { item, index, depth, name: slash < 0 ? item.path : item.path.slice(slash + 1), dir: item.kind === 'dir', changedInside: false };
    });
    const byPath = new Map<string, Node>();
    for (const n of out) if (n.dir && n.item.change !== 'D') byPath.set(n.item.path, n);
    for (const n of out) {
      if (n.item.change === null) continue;
      for (let k = n.item.path.lastIndexOf('/'); k > 0; k = n.item.path.lastIndexOf('/', k - 1)) {
        const d = byPath.get(n.item.path.slice(0, k));
        if (!d || d.changedInside) break;
        d.changedInside = true;
      }
    }
    return out;
  }, [tree]);
  const visible = useMemo<Node[]>(() => {
    const q = query.toLowerCase();
    let keep: Set<string> | null = null;
    if (q || only) {
      keep = new Set();
      for (const n of nodes) {
        if (only && n.item.change === null) continue;
        if (q && !n.item.path.toLowerCase().includes(q)) continue;
        keep.add(n.item.path);
        for (let k = n.item.path.lastIndexOf('/'); k > 0; k = n.item.path.lastIndexOf('/', k - 1)) {
          const p = n.item.path.slice(0, k);
          if (keep.has(p)) break;
          keep.add(p);
        }
      }
    }
    const out: Node[] = [];
    let hideUnder: string | null = null;
    for (const n of nodes) {
      if (hideUnder !== null && n.item.path.startsWith(hideUnder)) continue;
      hideUnder = null;
      if (keep && !keep.has(n.item.path)) continue;
      out.push(n);
      if (n.dir && collapsed.has(n.item.path)) hideUnder = n.item.path + '/';
    }
    return out;
  }, [nodes, collapsed, only, query]);
  // For the bench (bench/serve.ts): when this layer's tree was first on screen.
  useEffect(() => { performance.mark(`glayer:tree:${layer}`); }, [tree]);
  const selectedIndex = selected === null ? -1 : visible.findIndex((n) => n.item.path === selected);
  const toggle = (path: string): void => { const s = new Set(collapsed); if (s.has(path)) s.delete(path); else s.add(path); setCollapsed(s); };
  const c = tree.counts;
  return html`<section class="tree-panel" data-tree=${layer}>
    <div class="tree-tools">
      <input id="search" type="search" placeholder="Search paths…" value=${text} autocomplete="off" spellcheck=${false}
        onInput=${(e: Event) => { const v = (e.currentTarget as HTMLInputElement).value; setText(v); setQuery({ q: v }, true); }} />
      <label class="toggle"><input id="only-changes" type="checkbox" checked=${only} onChange=${(e: Event) => setQuery({ only: (e.currentTarget as HTMLInputElement).checked ? '1' : null }, true)} /> Changes only</label>
    </div>
    <div class="tree-summary">
      <span data-testid="tree-count">${visible.length.toLocaleString('en')} of ${tree.entries.length.toLocaleString('en')} entries</span>
      <span><${Counts} a=${c.added} c=${c.changed} d=${c.deleted} m=${c.metadata} /> · ${bytes(tree.bytes)}</span>
    </div>
    <div class="tree-head"><span class="col-chg"></span><span class="col-name">Name</span><span class="col-size">Size</span></div>
    <${VirtualList} items=${visible} rowHeight=${24} scrollTo=${selectedIndex} row=${(n: Node) => {
      const ch = n.item.change;
      const cls = `row${ch ? ' ch-' + ch : ''}${n.dir ? ' dir' : ''}${n.item.path === selected ? ' selected' : ''}${!ch && n.changedInside ? ' inside' : ''}`;
      const open = !collapsed.has(n.item.path);
      return html`<div class=${cls} key=${n.index} data-path=${n.item.path} data-change=${ch ?? ''} title=${n.item.path + (ch ? ` (${CHANGE_TITLE[ch]})` : '')}
        onClick=${() => setQuery({ path: n.item.path, tab: parseRoute().q.get('tab') ?? (ch && ch !== 'M' && !n.dir ? 'diff' : null) })}>
        <span class="col-chg">${ch ?? ''}</span>
        <span class="col-name" style=${{ paddingLeft: `${n.depth * 16 + 4}px` }}>
          ${n.dir ? html`<button class="caret" aria-label=${open ? 'collapse' : 'expand'} onClick=${(e: Event) => { e.stopPropagation(); toggle(n.item.path); }}>${open ? '▾' : '▸'}</button>` : html`<span class="caret"></span>`}
          <span class=${'icon ' + n.item.kind}></span>${n.name}${n.dir ? '/' : ''}${n.item.kind === 'symlink' ? html` <span class="muted">→</span>` : ''}
        </span>
        <span class="col-size">${bytes(n.item.size)}</span>
      </div>`;
    }} />
  </section>`;
}

function DiffView({ files }: { files: FileDiff[] }) {
  const body = useMemo(() => {
    const text = files.filter((f) => !f.skipped).map(unified).join('');
    return text ? diff2html(text, { drawFileList: false, outputFormat: 'line-by-line', matching: 'lines', diffStyle: 'word' }) : '';
  }, [files]);
  const skipped = files.filter((f) => f.skipped);
  return html`<div class="diff">
    ${skipped.map((f) => html`<div class="note">${f.path}: ${f.skipped === 'too-large' ? 'too large to diff (64 MiB or more)' : 'took too long to diff'}; the files differ.</div>`)}
    <div class="d2h" dangerouslySetInnerHTML=${{ __html: body }}></div>
  </div>`;
}

function FileContent({ layer, path, deletedHere, below }: { layer: string; path: string; deletedHere: boolean; below: string | null }) {
  const at = deletedHere ? below : layer;
  const { data, error } = useApi<FileResult>(at ? 'file' : null, { layer: at ?? undefined, path });
  if (!at) return html`<div class="muted pad">No content.</div>`;
  if (error) return html`<${Failed} error=${error} />`;
  if (!data) return html`<${Loading} what="the file" />`;
  const note = deletedHere ? html`<div class="note">Deleted by this layer; this is its content in the layer below (${short(below)}).</div>` : '';
  if (data.entries) return html`${note}<div class="pad"><div class="muted">Directory, ${data.entries.length} entries</div><ul class="entries">${data.entries.map((e) => html`<li>${e}</li>`)}</ul></div>`;
  if (data.kind === 'symlink') return html`${note}<div class="pad">Symbolic link to <code>${data.text}</code></div>`;
  if (data.binary) return html`${note}<div class="pad muted">Binary file, ${bytes(data.size)} (${data.mode}). Not shown.</div>`;
  if (data.text === null) return html`${note}<div class="pad muted">${bytes(data.size)}: too large to show here.</div>`;
  const lines = data.text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return html`${note}
    <div class="file-meta">${bytes(data.size)} · mode ${data.mode} · blob ${short(data.oid)}</div>
    ${data.truncated ? html`<div class="note">Large file: only the first ${bytes(data.limit)} are shown.</div>` : ''}
    <pre class="code" data-testid="file-content">${lines.map((l, i) => html`<div class="line"><span class="ln">${i + 1}</span>${l}\n</div>`)}</pre>`;
}

function FileDiffPanel({ layer, path }: { layer: string; path: string }) {
  const { data, error } = useApi<DiffResult>('diff', { layer, path });
  if (error) return html`<${Failed} error=${error} />`;
  if (!data) return html`<${Loading} what="the diff" />`;
  if (data.files.length === 0) return html`<div class="pad muted">This layer did not change ${path} (it comes unchanged from below).</div>`;
  return html`<div class="muted pad-s">${data.from.id ? short(data.from.id) : data.from.name} → ${data.to.id ? short(data.to.id) : data.to.name}</div><${DiffView} files=${data.files} />`;
}

function BlamePanel({ layer, path, stack }: { layer: string; path: string; stack: string | null }) {
  const { data, error } = useApi<BlameResult>('blame', { path, layer: layer === 'upper' ? undefined : layer });
  if (error) return html`<${Failed} error=${error} />`;
  if (!data) return html`<${Loading} what="the blame" />`;
  if (data.entries.length === 0) return html`<div class="pad muted">No layer touched ${path}.</div>`;
  return html`<table class="grid" data-testid="blame">
    <thead><tr><th>Layer</th><th>Date</th><th>Change</th><th>Kind</th><th>Size</th><th>Files</th><th>Message</th></tr></thead>
    <tbody>${data.entries.map((e) => html`<tr class=${e.id === layer ? 'current' : ''}>
      <td><a class="mono" href=${href('/layer/' + e.id, { stack, path, tab: 'diff' })}>${short(e.id)}</a></td>
      <td>${when(e.date)}</td><td><span class=${'badge ch-' + e.change}>${CHANGE_TITLE[e.change]}</span></td><td>${e.kind}</td><td>${bytes(e.size)}</td>
      <td><${Counts} a=${e.files.added} c=${e.files.changed} d=${e.files.deleted} /></td><td>${firstLine(e.message)}</td>
    </tr>`)}</tbody>
  </table>`;
}

function FilePanel({ layer, path, tab, stack, tree }: { layer: string; path: string; tab: string; stack: string | null; tree: TreeResult }) {
  const item = tree.entries.find((e) => e.path === path && e.change !== 'D') ?? tree.entries.find((e) => e.path === path);
  const deletedHere = item?.change === 'D';
  const tabs: Array<[string, string]> = [['content', 'Content'], ['diff', 'Diff'], ['blame', 'Blame']];
  return html`<section class="file-panel">
    <div class="file-head">
      <div class="file-path mono" data-testid="file-path">${path}${item?.change ? html` <span class=${'badge ch-' + item.change}>${CHANGE_TITLE[item.change]}</span>` : ''}</div>
      <div class="tabs" role="tablist">${tabs.map(([t, label]) => html`<button role="tab" class=${'tab' + (t === tab ? ' active' : '')} data-tab=${t} aria-selected=${t === tab} onClick=${() => setQuery({ tab: t })}>${label}</button>`)}</div>
    </div>
    <div class="file-body">
      ${tab === 'diff' ? html`<${FileDiffPanel} layer=${layer} path=${path} />`
        : tab === 'blame' ? html`<${BlamePanel} layer=${layer} path=${path} stack=${stack} />`
        : html`<${FileContent} layer=${layer} path=${path} deletedHere=${deletedHere} below=${tree.below} />`}
    </div>
  </section>`;
}

function LayerView({ id, route, layers, tags }: { id: string; route: Route; layers: LayerInfo[] | null; tags: Tag[] }) {
  const { data: tree, error } = useApi<TreeResult>('tree', { layer: id }, id === 'upper');
  const stack = route.q.get('stack');
  const path = route.q.get('path');
  const tab = route.q.get('tab') ?? 'content';
  const only = route.q.get('only') === '1';
  const query = route.q.get('q') ?? '';
  const info = layers?.find((l) => l.id === id) ?? null;
  useEffect(() => { document.title = `${id === 'upper' ? 'writable layer' : short(id)}${path ? ' · ' + path : ''} · glayer`; }, [id, path]);
  const layerTags = tags.filter((t) => t.id === id);
  return html`<div class="layer-view">
    <header class="layer-head">
      <div>
        <h1>${id === 'upper' ? 'Writable layer (pending changes)' : html`Layer <span class="mono">${short(id)}</span>`} ${layerTags.map((t) => html`<span class="tag">${t.name}</span>`)}</h1>
        <div class="muted">${info ? html`${when(info.date)} · ${info.author.name} · ${firstLine(info.message)}` : id === 'upper' ? 'Edits in the view and the writable layer, not committed yet' : ''}</div>
      </div>
      <div class="layer-actions">
        ${info ? html`<${Counts} a=${info.added} c=${info.changed} d=${info.deleted} /> <span class="muted">${bytes(info.bytes)}</span>` : ''}
        ${tree?.below ? html`<a class="button" href=${href('/compare', { from: tree.below, to: id, stack })}>Compare with below</a>` : ''}
      </div>
    </header>
    ${error ? html`<${Failed} error=${error} />` : !tree ? html`<${Loading} what="the tree" />` : html`<div class="split">
      <${TreePanel} key=${id} tree=${tree} layer=${id} selected=${path} only=${only} query=${query} />
      ${path ? html`<${FilePanel} key=${id + '\0' + path} layer=${id} path=${path} tab=${tab} stack=${stack} tree=${tree} />`
        : html`<section class="file-panel empty"><div class="pad muted">Pick a file in the tree to see its content, its diff against the layer below and its blame.
          <ul class="legend"><li><b class="ch-A">A</b> added by this layer</li><li><b class="ch-C">C</b> changed</li><li><b class="ch-D">D</b> deleted (whiteout)</li><li><b class="ch-M">M</b> metadata only (mode)</li></ul></div></section>`}
    </div>`}
  </div>`;
}

interface LayerChoice { id: string; label: string }

function CompareView({ route, choices }: { route: Route; choices: LayerChoice[] }) {
  const from = route.q.get('from') ?? choices[1]?.id ?? '';
  const to = route.q.get('to') ?? choices[0]?.id ?? '';
  const path = route.q.get('path');
  const stack = route.q.get('stack');
  const list = useApi<DiffResult>(from && to ? 'diff' : null, { from, to, content: '0' });
  const one = useApi<DiffResult>(from && to && path ? 'diff' : null, { from, to, path: path ?? undefined });
  const pick = (name: string) => (e: Event) => setQuery({ [name]: (e.currentTarget as HTMLSelectElement).value, path: null });
  const options = (sel: string, withUpper: boolean) => html`${choices.filter((c) => withUpper || c.id !== 'upper').map((c) => html`<option value=${c.id} selected=${c.id === sel}>${c.label}</option>`)}`;
  useEffect(() => { document.title = `diff ${short(from)} ${short(to)} · glayer`; }, [from, to]);
  return html`<div class="compare">
    <header class="layer-head">
      <h1>Compare</h1>
      <div class="compare-pick">
        <label>From <select id="compare-from" onChange=${pick('from')}>${options(from, false)}</select></label>
        <span class="arrow">→</span>
        <label>To <select id="compare-to" onChange=${pick('to')}>${options(to, true)}</select></label>
        <code class="muted">glayer diff ${short(from)} ${to === 'upper' ? '--view' : short(to)}</code>
      </div>
    </header>
    ${list.error ? html`<${Failed} error=${list.error} />` : !list.data ? html`<${Loading} what="the differences" />` : html`<div class="split">
      <section class="tree-panel">
        <div class="tree-summary"><span data-testid="compare-count">${list.data.count.toLocaleString('en')} files differ</span></div>
        <${VirtualList} items=${list.data.files} rowHeight=${24} scrollTo=${list.data.files.findIndex((f) => f.path === path)} row=${(f: FileDiff, i: number) => html`
          <div key=${i} class=${`row ch-${f.change === 'M' ? 'C' : f.change}${f.path === path ? ' selected' : ''}`} data-path=${f.path} data-change=${f.change} onClick=${() => setQuery({ path: f.path })}>
            <span class="col-chg">${f.change}</span><span class="col-name mono">${f.path}</span>
          </div>`} />
      </section>
      <section class="file-panel">
        ${!path ? html`<div class="pad muted">Pick a file to see its diff.</div>`
          : one.error ? html`<${Failed} error=${one.error} />` : !one.data ? html`<${Loading} what="the diff" />`
          : html`<div class="file-head"><div class="file-path mono" data-testid="file-path">${path}</div></div><div class="file-body"><${DiffView} files=${one.data.files} /></div>`}
      </section>
    </div>`}
  </div>`;
}

/** dive's figures for the stack (`glayer efficiency --json`): shown only where the server has the endpoint. */
function EfficiencyPanel({ stack }: { stack: string }) {
  const { data, error } = useApi<Efficiency | { unavailable: true }>('efficiency', { stack, limit: '10' });
  if (error) return html`<${Failed} error=${error} />`;
  if (!data) return html`<${Loading} what="the efficiency figures" />`;
  if ('unavailable' in data) return null;
  return html`<section class="efficiency" data-testid="efficiency">
    <h2>Efficiency</h2>
    <div class="cards">
      <div class="card"><div class="big">${(data.efficiency * 100).toFixed(1)}%</div><div class="muted">score (union bytes / all bytes)</div></div>
      <div class="card"><div class="big">${bytes(data.wastedBytes)}</div><div class="muted">wasted (hidden by layers above)</div></div>
      <div class="card"><div class="big">${data.userWastedPercent.toFixed(1)}%</div><div class="muted">of the upper layers' bytes wasted</div></div>
    </div>
    ${data.paths.length ? html`<table class="grid"><thead><tr><th>Top offenders</th><th>Layers holding it</th><th>Wasted</th></tr></thead>
      <tbody>${data.paths.map((p) => html`<tr><td class="mono">${p.path}</td><td>${p.count}</td><td>${bytes(p.wastedBytes)}</td></tr>`)}</tbody></table>` : html`<p class="muted">No layer hides bytes of another.</p>`}
  </section>`;
}

function StackView({ name, layers, tags, pending }: { name: string; layers: LayerInfo[] | null; tags: Tag[]; pending: StatusItem[] | null }) {
  useEffect(() => { document.title = `${name} · glayer`; }, [name]);
  if (!layers) return html`<${Loading} what="the layers" />`;
  return html`<div class="stack-view pad">
    <h1>Stack ${name}</h1>
    <p class="muted">${layers.length} layers, top first${pending && pending.length ? html` · <a href=${href('/layer/upper', { stack: name })}>${pending.length} pending changes</a> in the writable layer` : ''}</p>
    <table class="grid" data-testid="log">
      <thead><tr><th>Layer</th><th>Created</th><th>Changes</th><th>Size</th><th>Message</th></tr></thead>
      <tbody>${layers.map((l) => html`<tr>
        <td><a class="mono" href=${href('/layer/' + l.id, { stack: name })}>${short(l.id)}</a> ${tags.filter((t) => t.id === l.id).map((t) => html`<span class="tag">${t.name}</span>`)}</td>
        <td>${when(l.date)}</td><td><${Counts} a=${l.added} c=${l.changed} d=${l.deleted} /></td><td>${bytes(l.bytes)}</td><td>${firstLine(l.message)}</td>
      </tr>`)}</tbody>
    </table>
    <${EfficiencyPanel} stack=${name} />
  </div>`;
}

function Sidebar({ stacks, stack, layers, tags, pending, selected, current }: { stacks: StackInfo[]; stack: string; layers: LayerInfo[] | null; tags: Tag[]; pending: StatusItem[] | null; selected: string | null; current: boolean }) {
  useEffect(() => { if (layers) performance.mark(`glayer:layers:${stack}`); }, [layers]);
  const pc = { A: 0, C: 0, D: 0 };
  for (const p of pending ?? []) pc[p.change]++;
  return html`<nav class="sidebar">
    <div class="side-title">Stacks</div>
    <ul class="stacks">${stacks.map((s) => html`<li>
      <a class=${'stack' + (s.name === stack ? ' active' : '')} href=${href('/stack/' + s.name)} data-stack=${s.name}>
        <span class="stack-name">${s.current ? '● ' : ''}${s.name}</span><span class="muted">${s.layers}</span>
      </a></li>`)}</ul>
    <div class="side-title">Layers of ${stack}</div>
    <ul class="layers">
      ${current ? html`<li><a class=${'layer pending' + (selected === 'upper' ? ' active' : '')} href=${href('/layer/upper', { stack })} data-layer="upper">
        <div class="layer-line"><span class="mono">writable</span><${Counts} a=${pc.A} c=${pc.C} d=${pc.D} /></div>
        <div class="layer-msg muted">${pending === null ? 'pending changes…' : pending.length ? `${pending.length} pending changes` : 'no pending changes'}</div>
      </a></li>` : ''}
      ${layers === null ? html`<li class="muted pad-s">Loading…</li>` : layers.map((l) => html`<li><a class=${'layer' + (selected === l.id ? ' active' : '')} href=${href('/layer/' + l.id, { stack })} data-layer=${l.id}>
        <div class="layer-line"><span class="mono">${short(l.id)}</span><${Counts} a=${l.added} c=${l.changed} d=${l.deleted} /></div>
        <div class="layer-msg">${firstLine(l.message)} ${tags.filter((t) => t.id === l.id).map((t) => html`<span class="tag">${t.name}</span>`)}</div>
        <div class="layer-meta muted">${when(l.date)} · ${bytes(l.bytes)}</div>
      </a></li>`)}
    </ul>
  </nav>`;
}

function App() {
  const route = useRoute();
  const info = useApi<Info>('info');
  const stacksR = useApi<StackInfo[]>('stacks');
  const tagsR = useApi<Tag[]>('tags');
  const status = useApi<StatusItem[]>('status', {}, true);
  const all = stacksR.data ?? [];
  const currentStack = all.find((s) => s.current)?.name ?? all[0]?.name ?? null;
  const [kind, arg] = route.parts;
  const stack = (kind === 'stack' ? arg : route.q.get('stack')) ?? currentStack;
  const layersR = useApi<LayerInfo[]>(stack ? 'log' : null, { stack: stack ?? undefined });
  // Every layer of every stack, for the comparison's choices (loaded only there).
  const [choices, setChoices] = useState<LayerChoice[] | null>(null);
  useEffect(() => {
    if (kind !== 'compare' || choices || !stacksR.data) return;
    const stacks = stacksR.data;
    Promise.all(stacks.map((s) => api<LayerInfo[]>('log', { stack: s.name }))).then((logs) => {
      const seen = new Set<string>();
      const out: LayerChoice[] = [];
      const cur = stacks.findIndex((s) => s.current);
      const order = cur > 0 ? [cur, ...stacks.keys()].filter((v, i, a) => a.indexOf(v) === i) : [...stacks.keys()];
      for (const k of order) {
        logs[k].forEach((l, i) => { if (!seen.has(l.id)) { seen.add(l.id); out.push({ id: l.id, label: `${stacks[k].name}${i ? '~' + i : ''}  ${short(l.id)}  ${firstLine(l.message).slice(0, 50)}` }); } });
      }
      out.push({ id: 'upper', label: 'writable layer (pending changes)' });
      setChoices(out);
    });
  }, [kind, stacksR.data]);
  useEffect(() => {
    if (!location.hash && currentStack) location.replace(href('/stack/' + currentStack));
  }, [currentStack]);

  const err = info.error ?? stacksR.error;
  let main;
  if (err) main = html`<${Failed} error=${err} />`;
  else if (!stacksR.data) main = html`<${Loading} what="the stacks" />`;
  else if (kind === 'layer' && arg) main = html`<${LayerView} id=${arg} route=${route} layers=${layersR.data} tags=${tagsR.data ?? []} />`;
  else if (kind === 'compare') main = choices ? html`<${CompareView} route=${route} choices=${choices} />` : html`<${Loading} what="the layers" />`;
  else if (stack) main = html`<${StackView} name=${stack} layers=${layersR.data} tags=${tagsR.data ?? []} pending=${stack === currentStack ? status.data : null} />`;
  else main = html`<div class="pad muted">This store has no stacks yet.</div>`;
  return html`<div class="app">
    <header class="top">
      <a class="brand" href=${href('/stack/' + (currentStack ?? ''))}><span class="logo"></span>glayer</a>
      <span class="root mono muted" title=${info.data?.store ?? ''}>${info.data?.root ?? ''}</span>
      <nav class="topnav">
        <a class=${kind !== 'compare' ? 'active' : ''} href=${href('/stack/' + (stack ?? ''))}>Layers</a>
        <a class=${kind === 'compare' ? 'active' : ''} href=${href('/compare', { stack })} data-nav="compare">Compare</a>
      </nav>
    </header>
    <div class="body">
      ${stack ? html`<${Sidebar} stacks=${all} stack=${stack} layers=${layersR.data} tags=${tagsR.data ?? []} pending=${status.data} selected=${kind === 'layer' ? arg : null} current=${stack === currentStack} />` : ''}
      <main class="main">${main}</main>
    </div>
  </div>`;
}

render(html`<${App} />`, document.getElementById('app')!);

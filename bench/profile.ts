/** Summaries of V8 .cpuprofile files (from `node --cpu-prof`): self time by function and by file. */
import * as fs from 'node:fs';
import { join, relative } from 'node:path';

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
interface Profile { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

export interface ProfileSummary {
  file: string;
  totalMs: number;
  byFunction: Array<{ name: string; ms: number; pct: number }>;
  byFile: Array<{ name: string; ms: number; pct: number }>;
  /** Inclusive time of the functions under src/ (dist/), the ones worth optimizing. */
  inclusive: Array<{ name: string; ms: number; pct: number }>;
}

function shortUrl(url: string, root: string): string {
  if (!url) return '';
  const p = url.startsWith('file://') ? url.slice(7) : url;
  return p.startsWith(root) ? relative(root, p) : p;
}

export function summarize(file: string, root: string, top = 12): ProfileSummary {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
  const byId = new Map<number, Node>();
  const parent = new Map<number, number>();
  for (const n of prof.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const self = new Map<number, number>();
  for (let i = 0; i < prof.samples.length; i++) {
    const dt = (prof.timeDeltas[i + 1] ?? 0) / 1000;
    self.set(prof.samples[i], (self.get(prof.samples[i]) ?? 0) + dt);
  }
  const totalMs = (prof.endTime - prof.startTime) / 1000;
  const fnKey = (n: Node): string => {
    const u = shortUrl(n.callFrame.url, root);
    return `${n.callFrame.functionName || '(anonymous)'}${u ? ` ${u}:${n.callFrame.lineNumber + 1}` : ''}`;
  };
  const fileKey = (n: Node): string => shortUrl(n.callFrame.url, root) || n.callFrame.functionName || '(native)';
  const fns = new Map<string, number>();
  const files = new Map<string, number>();
  const incl = new Map<string, number>();
  for (const [id, ms] of self) {
    const n = byId.get(id)!;
    fns.set(fnKey(n), (fns.get(fnKey(n)) ?? 0) + ms);
    files.set(fileKey(n), (files.get(fileKey(n)) ?? 0) + ms);
    // Charge this sample to every distinct dist/ function on its stack.
    const seen = new Set<string>();
    for (let c: number | undefined = id; c !== undefined; c = parent.get(c)) {
      const cn = byId.get(c)!;
      if (!cn.callFrame.url.includes('/dist/')) continue;
      const k = fnKey(cn);
      if (seen.has(k)) continue;
      seen.add(k);
      incl.set(k, (incl.get(k) ?? 0) + ms);
    }
  }
  const list = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]).slice(0, top)
    .map(([name, ms]) => ({ name, ms: Math.round(ms), pct: Math.round((ms / totalMs) * 1000) / 10 }));
  return { file, totalMs: Math.round(totalMs), byFunction: list(fns), byFile: list(files), inclusive: list(incl) };
}

export function formatSummary(s: ProfileSummary): string {
  const lines = [`  profile ${s.file} (${s.totalMs} ms sampled)`];
  const sect = (title: string, rows: ProfileSummary['byFile']) => {
    lines.push(`    ${title}:`);
    for (const r of rows) lines.push(`      ${String(r.ms).padStart(7)} ms ${String(r.pct).padStart(5)}%  ${r.name}`);
  };
  sect('self time by file', s.byFile.slice(0, 8));
  sect('self time by function', s.byFunction);
  sect('inclusive time, glayer functions (dist/)', s.inclusive);
  return lines.join('\n');
}

export function newestProfile(dir: string): string | null {
  if (!fs.existsSync(dir)) return null;
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(dir, f));
  files.sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
  return files[0] ?? null;
}

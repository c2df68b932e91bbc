/**
 * Bench rows 15-21: live views (`glayer mount-view --live`), each alternated with its anchor on the same data
 * (row 20 is a measure of disk, not of time).
 * Needs a backend (root for the kernel's overlayfs, else fuse-overlayfs); rows 15-20 use the default one, row 21
 * the kernel's. Every live view a sample makes is unmounted (untimed) before the next.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { applyEdits, makeEditSet, type EditSet, type Manifest, type Workload } from './workload.js';
import { ENV, git, glayer, run, stats, type Stats } from './proc.js';
import { chooseBackend } from '../src/mount/live.js';

interface Timing { ms: number; cpu: number }
interface Sampler { label: string; sample(): Timing }
interface Side { label: string; stats: Stats; cpu?: Stats }

/** What bench.ts lends these rows (its fixture and helpers), so that this file adds rows without copies. */
export interface LiveBench {
  base: string;
  w: Workload;
  m0: Manifest;
  native: string;
  template: string;
  cfg: { mod: number; del: number; add: number; layers: number };
  seed: number;
  runs: number;
  check(name: string, ok: boolean, detail?: string): boolean;
  checkManifest(name: string, want: Manifest, dir: string, skip?: string[]): boolean;
  alternate(samplers: Sampler[], runs: number): Side[];
  ratioRow(id: number, operation: string, sides: Side[], target: number, notes?: string[]): unknown;
  /** Put a tree aside instead of deleting it during the bench (bench.ts, bury). */
  bury(path: string): void;
  copyWorkspace(name: string): string;
  /** The row-4 deep stack's workspace (built if row 4 did not run). */
  deepWorkspace(): string;
  attempt(id: number, name: string, fn: () => unknown): void;
}

let seq = 0;

function flush(): void {
  run('sync', [], { noWrap: true } as never);
}

/** Mount a live view of `ws` at a fresh target (timed); unmount it afterwards (untimed). */
function liveSampler(b: LiveBench, label: string, ws: string, opts: { cold?: boolean; backend?: string; want?: Manifest } = {}): Sampler {
  let n = 0;
  return {
    label,
    sample(): Timing {
      if (opts.cold) b.bury(join(ws, '.glayer', 'glayer', 'cache'));
      flush();
      const target = join(b.base, 'views', `live-${++seq}`);
      const r = glayer(b.base, ['-C', ws, 'mount-view', '--live', ...(opts.backend ? ['--backend', opts.backend] : []), target]);
      if (opts.want && n++ < 2) b.checkManifest(`${label}: the live view equals the generated tree`, opts.want, target);
      glayer(b.base, ['-C', ws, 'umount']);
      fs.rmdirSync(target);
      return r;
    },
  };
}

function gitCheckoutSampler(b: LiveBench): Sampler {
  return {
    label: 'git checkout',
    sample(): Timing {
      const target = join(b.base, 'views', `git-live-${++seq}`);
      fs.mkdirSync(target, { recursive: true });
      flush();
      const env = { ...ENV, GIT_INDEX_FILE: `${target}.index` };
      const r = git(['--git-dir', join(b.native, '.git'), '--work-tree', target, 'checkout', '-f', 'HEAD', '--', '.'], { cwd: target, env });
      b.bury(target);
      fs.rmSync(`${target}.index`, { force: true });
      return r;
    },
  };
}

function duKiB(paths: string[]): number {
  const r = run('du', ['-s', '-k', '-x', '-c', ...paths]);
  const last = r.stdout.trim().split('\n').pop() ?? '0';
  return Number(last.split(/\s+/)[0]);
}

export function liveRows(b: LiveBench): void {
  try { chooseBackend(); } catch (e) {
    process.stderr.write(`bench: rows 15-21 skipped: ${(e as Error).message}\n`);
    return;
  }
  const wl = b.copyWorkspace('wlive');
  // The first live mount fills the layer cache; it also checks the view.
  glayer(b.base, ['-C', wl, 'mount-view', '--live', join(b.base, 'views', 'live-setup')]);
  b.checkManifest('live view (setup): equals the generated tree', b.m0, join(b.base, 'views', 'live-setup'));
  glayer(b.base, ['-C', wl, 'umount']);
  fs.rmdirSync(join(b.base, 'views', 'live-setup'));

  b.attempt(15, 'live mount, layer cache warm', () =>
    b.ratioRow(15, 'live mount of the tree, layer cache warm', b.alternate([liveSampler(b, 'glayer mount-view --live (warm)', wl, { want: b.m0 }), gitCheckoutSampler(b)], b.runs), 0.02));

  b.attempt(16, 'live mount, layer cache cold', () =>
    b.ratioRow(16, 'live mount of the tree, layer cache cold (first mount)', b.alternate([liveSampler(b, 'glayer mount-view --live (cold)', wl, { cold: true, want: b.m0 }), gitCheckoutSampler(b)], b.runs), 1.0));

  const ws17 = b.copyWorkspace('wlive17');
  const view17 = join(ws17, 'view');
  glayer(b.base, ['-C', ws17, 'mount-view', '--live']);
  try {
    b.attempt(17, 'status in a live view', () => {
      glayer(b.base, ['-C', ws17, 'status']);
      git(['status'], { cwd: b.native });
      let n = 0;
      const gs: Sampler = {
        label: 'glayer status (live view)',
        sample(): Timing {
          const r = glayer(b.base, ['-C', ws17, 'status']);
          if (n++ < 2) b.check('row 17: status of an unchanged live view prints nothing', r.stdout === '', r.stdout.slice(0, 300));
          return r;
        },
      };
      return b.ratioRow(17, 'status in a live view, nothing changed', b.alternate([gs, { label: 'git status', sample: () => git(['status'], { cwd: b.native }) }], b.runs), 1.0);
    });

    b.attempt(18, 'commit in a live view', () => {
      const e: EditSet = makeEditSet(b.w, b.seed + 3, b.cfg.mod, b.cfg.del, b.cfg.add);
      let gk = 0;
      const gc: Sampler = {
        label: 'glayer commit (live view)',
        sample(): Timing {
          const want = applyEdits(b.w, view17, e, gk % 2 === 1, b.m0);
          const r = glayer(b.base, ['-C', ws17, 'commit', '-m', `live edit ${gk}`]);
          if (gk < 2) {
            const st = glayer(b.base, ['-C', ws17, 'status', '--json']);
            b.check(`row 18 commit ${gk}: status is clean after commit`, JSON.stringify(JSON.parse(st.stdout)) === '[]', st.stdout.slice(0, 300));
            const layer = git(['--git-dir', join(ws17, '.glayer'), 'ls-tree', '-r', '--name-only', 'refs/heads/main']).stdout.split('\n').filter(Boolean);
            const n = b.cfg.mod + b.cfg.add + b.cfg.del;
            b.check(`row 18 commit ${gk}: the layer holds ${n} entries`, layer.length === n, `${layer.length}`);
            b.checkManifest(`row 18 commit ${gk}: the remounted view is unchanged by the commit`, want, view17);
            b.check(`row 18 commit ${gk}: the upper directory is empty`, fs.readdirSync(join(ws17, 'upper')).length === 0);
          }
          gk++;
          return r;
        },
      };
      let nk = 0;
      const nc: Sampler = {
        label: 'git add -A && git commit',
        sample(): Timing {
          applyEdits(b.w, b.native, e, nk % 2 === 1, b.m0);
          const a = git(['add', '-A'], { cwd: b.native });
          const c = git(['commit', '-q', '-m', `live edit ${nk}`], { cwd: b.native });
          nk++;
          return { ms: a.ms + c.ms, cpu: a.cpu + c.cpu };
        },
      };
      const sides = b.alternate([gc, nc], b.runs);
      // Leave the native repository at the base tree for the rows after this one.
      if (nk % 2 === 1) { applyEdits(b.w, b.native, e, true, b.m0); git(['add', '-A'], { cwd: b.native }); git(['commit', '-q', '-m', 'back'], { cwd: b.native }); }
      return b.ratioRow(18, `commit of ${b.cfg.mod} modified + ${b.cfg.del} deleted + ${b.cfg.add} added files in a live view`, sides, 0.8);
    });
  } finally {
    glayer(b.base, ['-C', ws17, 'umount'], { allowFail: true });
  }

  b.attempt(19, 'live mount of a deep stack, warm', () => {
    const deep = b.deepWorkspace();
    const first = liveSampler(b, 'glayer mount-view --live, deep stack (first)', deep, { want: b.m0 }).sample();
    const sides = b.alternate([liveSampler(b, 'glayer mount-view --live, deep stack', deep, { want: b.m0 }), liveSampler(b, 'glayer mount-view --live, one layer', wl)], b.runs);
    return b.ratioRow(19, `live mount of a ${b.cfg.layers}-layer stack vs the one-layer stack, warm`, sides, 1.25, [`first live mount of the deep stack (cache cold): ${first.ms.toFixed(0)} ms`]);
  });

  b.attempt(20, 'disk used by 10 live views of the stack', () => {
    // One workspace with its live view, then nine linked workspaces (`glayer workspace add`) of the same store,
    // each with its own live view: du of every workspace (-x: not into the mounts), the layer cache included.
    const w20 = b.copyWorkspace('wlive20');
    const linked: string[] = [];
    try {
      glayer(b.base, ['-C', w20, 'mount-view', '--live']);
      b.checkManifest('row 20: the first live view equals the generated tree', b.m0, join(w20, 'view'));
      const one = duKiB([w20]);
      for (let k = 1; k < 10; k++) {
        const ws = join(b.base, `wlive20-${k}`);
        glayer(b.base, ['-C', w20, 'workspace', 'add', ws]);
        linked.push(ws);
        glayer(b.base, ['-C', ws, 'mount-view', '--live']);
      }
      b.checkManifest('row 20: the tenth live view equals the generated tree', b.m0, join(linked[8], 'view'));
      const ten = duKiB([w20, ...linked]);
      const mib = (k: number): Stats => stats([k / 1024]);
      const ratio = ten / one;
      return {
        id: 20, operation: 'disk used by 10 live views of the stack (du of the workspaces, layer cache included)', unit: 'MiB',
        glayer: { label: '10 live views (1 workspace + 9 linked)', stats: mib(ten) }, anchor: { label: 'one live view', stats: mib(one) },
        extra: [], ratio, target: '<= 1.1x', met: ratio <= 1.1,
        notes: [`per added view: ${((ten - one) / 9).toFixed(0)} KiB`],
      };
    } finally {
      for (const ws of [...linked, w20]) glayer(b.base, ['-C', ws, 'umount'], { allowFail: true });
    }
  });

  b.attempt(21, 'reading every file through a kernel live view', () => {
    const copy = join(b.base, 'views', 'copy21');
    const live = join(b.base, 'views', 'live21');
    const w21 = b.copyWorkspace('wlive21');
    glayer(b.base, ['-C', w21, 'mount-view', copy]);
    glayer(b.base, ['-C', w21, 'mount-view', '--live', '--backend', 'kernel', live]);
    try {
      const tarOf = (label: string, dir: string): Sampler => ({
        label,
        // Through a pipe: GNU tar does not read file contents when the archive is /dev/null itself.
        sample: () => run('sh', ['-c', 'tar -cf - . | cat > /dev/null'], { cwd: dir }),
      });
      return b.ratioRow(21, 'reading every file through a kernel live view (tar)', b.alternate([tarOf('tar of the live view', live), tarOf('tar of a copied view', copy)], b.runs), 1.3);
    } finally {
      glayer(b.base, ['-C', w21, 'umount'], { allowFail: true });
    }
  });
}

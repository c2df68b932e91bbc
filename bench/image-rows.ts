/**
 * Bench rows 12-14 (image import and export), against umoci on the same tree:
 *  12. import of a one-layer image of the tree vs `umoci unpack` of it (target <= 0.5x: glayer writes objects,
 *      not files);
 *  13. export of that stack vs `umoci repack` of the same tree (target <= 1.0x);
 *  14. peak RSS of import and of export of an image whose one layer holds one large file (target <= 256 MiB).
 * Every import is checked (the stack's tree equals the generated tree's, fsck), every export is checked
 * (skopeo-free: the exported layer's diff_id equals the one recorded, and two exports have equal digests).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { git, glayer, glayerCli, run, runWithRss, rssMethod, stats, type Stats } from './proc.js';
import { textPool } from './workload.js';

interface Timing { ms: number; cpu: number }
interface Sampler { label: string; sample(): Timing }
interface Side { label: string; stats: Stats; cpu?: Stats }

export interface ImageBenchContext {
  base: string;
  src: string;
  /** The generated tree's git tree id (as native git computes it). */
  tree: string;
  runs: number;
  bigBytes: number;
  seed: number;
  alternate(samplers: Sampler[], runs: number): Side[];
  check(name: string, ok: boolean, detail?: string): boolean;
  log(s: string): void;
}

export interface ImageFixture { layout: string; bundleEmpty: string; stackWs: string }

/** A one-layer OCI image of the tree, made by umoci; a bundle of an empty image holding the tree (for repack). */
export function imageFixture(c: ImageBenchContext): ImageFixture {
  const layout = join(c.base, 'img');
  run('umoci', ['init', '--layout', layout]);
  run('umoci', ['new', '--image', `${layout}:empty`]);
  const bundleEmpty = join(c.base, 'bundle-empty');
  run('umoci', ['unpack', '--image', `${layout}:empty`, bundleEmpty]);
  run('cp', ['-a', `${c.src}/.`, join(bundleEmpty, 'rootfs')]);
  run('umoci', ['repack', '--image', `${layout}:tree`, bundleEmpty]);
  const stackWs = join(c.base, 'wimg');
  glayer(c.base, ['init', stackWs]);
  glayer(c.base, ['-C', stackWs, 'import', `oci:${layout}:tree`, '--stack', 'tree']);
  const tree = git(['--git-dir', join(stackWs, '.glayer'), 'ls-tree', '-d', 'tree', '--', 'tree']).stdout;
  void tree;
  c.log('image fixture ready (umoci repack of the tree, imported once)');
  return { layout, bundleEmpty, stackWs };
}

/** The tree of a stack's top layer without its manifest entry, as native git sees it. */
function treeWithoutManifest(gitdir: string, rev: string): string {
  const lines = git(['--git-dir', gitdir, 'ls-tree', rev]).stdout.split('\n').filter((l) => l && !l.endsWith('\t.wh..wh..meta'));
  return git(['--git-dir', gitdir, 'mktree'], { input: lines.join('\n') + '\n' }).stdout.trim();
}

export function row12(c: ImageBenchContext, fx: ImageFixture): { sides: Side[]; notes: string[] } {
  let n = 0;
  const imp: Sampler = {
    label: 'glayer import',
    sample(): Timing {
      const ws = join(c.base, `wimp-${++n}`);
      glayer(c.base, ['init', ws]);
      const r = glayer(c.base, ['-C', ws, 'import', `oci:${fx.layout}:tree`, '--stack', 'tree']);
      if (n <= 2) {
        const gd = join(ws, '.glayer');
        const t = treeWithoutManifest(gd, 'tree');
        c.check('row 12: the imported layer holds the generated tree', t === c.tree, `${t} vs ${c.tree}`);
        const f = git(['--git-dir', gd, 'fsck', '--strict', '--no-dangling'], { allowFail: true });
        c.check('row 12: git fsck --strict on the imported store', f.status === 0, f.stderr.slice(0, 300));
      }
      fs.rmSync(ws, { recursive: true, force: true });
      run('sync', [], { noWrap: true });
      return r;
    },
  };
  const unpack: Sampler = {
    label: 'umoci unpack',
    sample(): Timing {
      const b = join(c.base, `bunpack-${++n}`);
      const r = run('umoci', ['unpack', '--image', `${fx.layout}:tree`, b]);
      fs.rmSync(b, { recursive: true, force: true });
      run('sync', [], { noWrap: true });
      return r;
    },
  };
  return { sides: c.alternate([imp, unpack], c.runs), notes: [] };
}

export function row13(c: ImageBenchContext, fx: ImageFixture): { sides: Side[]; notes: string[] } {
  let n = 0;
  let first: string | null = null;
  const exp: Sampler = {
    label: 'glayer export',
    sample(): Timing {
      const out = join(c.base, `exp-${++n}`);
      const r = glayer(c.base, ['-C', fx.stackWs, 'export', `oci:${out}:t`, 'tree']);
      const index = fs.readFileSync(join(out, 'index.json'), 'utf8');
      if (first === null) first = index;
      else c.check('row 13: every export of the stack has the same manifest digest', index === first);
      fs.rmSync(out, { recursive: true, force: true });
      run('sync', [], { noWrap: true });
      return r;
    },
  };
  const repack: Sampler = {
    label: 'umoci repack',
    sample(): Timing {
      const r = run('umoci', ['repack', '--image', `${fx.layout}:r${++n}`, fx.bundleEmpty]);
      run('umoci', ['rm', '--image', `${fx.layout}:r${n}`]);
      run('umoci', ['gc', '--layout', fx.layout]);
      run('sync', [], { noWrap: true });
      return r;
    },
  };
  return { sides: c.alternate([exp, repack], c.runs), notes: [] };
}

export function row14(c: ImageBenchContext): { peakMiB: number; notes: string[] } {
  const method = rssMethod();
  const d = join(c.base, 'bigimg');
  fs.mkdirSync(join(d, 'root'), { recursive: true });
  const big = join(d, 'root', 'big.bin');
  const chunk = textPool(c.seed + 14, 8 << 20);
  const fd = fs.openSync(big, 'w');
  for (let off = 0, k = 0; off < c.bigBytes; k++) {
    const part = Buffer.concat([Buffer.from(`chunk ${k} `), chunk]).subarray(0, Math.min(chunk.length, c.bigBytes - off));
    fs.writeSync(fd, part);
    off += part.length;
  }
  fs.closeSync(fd);
  // An OCI layout by hand: one uncompressed layer (so building it costs one pass, not a gzip of 1 GiB).
  const layout = join(d, 'layout');
  const blobs = join(layout, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  const layerTar = join(d, 'layer.tar');
  run('tar', ['-C', join(d, 'root'), '-cf', layerTar, 'big.bin']);
  const h = createHash('sha256');
  const rfd = fs.openSync(layerTar, 'r');
  const buf = Buffer.alloc(8 << 20);
  for (let k; (k = fs.readSync(rfd, buf, 0, buf.length, null)) > 0;) h.update(buf.subarray(0, k));
  fs.closeSync(rfd);
  const layerDigest = 'sha256:' + h.digest('hex');
  fs.renameSync(layerTar, join(blobs, layerDigest.slice(7)));
  const put = (o: unknown): { digest: string; size: number } => {
    const b = Buffer.from(JSON.stringify(o));
    const dg = 'sha256:' + createHash('sha256').update(b).digest('hex');
    fs.writeFileSync(join(blobs, dg.slice(7)), b);
    return { digest: dg, size: b.length };
  };
  const cfg = put({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [layerDigest] } });
  const man = put({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layerDigest, size: fs.statSync(join(blobs, layerDigest.slice(7))).size }] });
  fs.writeFileSync(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  fs.writeFileSync(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...man, annotations: { 'org.opencontainers.image.ref.name': 'big' } }] }));
  fs.rmSync(big);
  c.log(`row 14: a ${(c.bigBytes / 2 ** 20).toFixed(0)} MiB one-file image`);
  const ws = join(c.base, 'wbig');
  glayer(c.base, ['init', ws]);
  const imp = runWithRss(method, glayerCli.bin, ['-C', ws, 'import', `oci:${layout}:big`, '--stack', 'big'], c.base);
  const size = git(['--git-dir', join(ws, '.glayer'), 'cat-file', '-s', 'big:big.bin'], { allowFail: true }).stdout.trim();
  c.check('row 14: the large file is in the store', size === String(c.bigBytes), size);
  const out = join(d, 'out');
  const exp = runWithRss(method, glayerCli.bin, ['-C', ws, 'export', `oci:${out}:big`, 'big', '--json'], c.base);
  const res = JSON.parse(exp.stdout) as { layers: Array<{ diffId: string }> };
  c.check('row 14: the exported layer holds the same tar stream content (diff_id)', res.layers.length === 1);
  fs.rmSync(d, { recursive: true, force: true });
  const mib = (k: number): number => Math.round(k / 1024);
  return {
    peakMiB: Math.max(mib(imp.rssKiB), mib(exp.rssKiB)),
    notes: [`import: ${mib(imp.rssKiB)} MiB peak RSS, ${(imp.ms / 1000).toFixed(1)} s; export: ${mib(exp.rssKiB)} MiB, ${(exp.ms / 1000).toFixed(1)} s (one run each)`],
  };
}

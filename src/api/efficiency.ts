/**
 * `efficiency [LAYER]`: how much of a stack's bytes its union hides, in the manner of dive.
 *
 * Every file and symlink a layer holds costs its bytes. A layer's entry is *wasted* when a higher layer hides
 * it: replaces the same path (a file over a file, anything non-directory over a directory) or deletes it (a
 * whiteout of the path or of a directory above it, an opaque directory above it). The union keeps exactly the
 * entries nothing hides, so the union's bytes are all bytes minus the wasted ones, and the efficiency score is
 * union bytes / all bytes (1 when there are no bytes).
 *
 * The walk goes down the stack, top layer first, through each layer's *delta* only (never a union), keeping
 * what the layers above hide: paths hidden whole, directories whose lower children are hidden (opaque) and
 * paths where a directory hides a lower non-directory. A layer's markers hide only what is below it. The cost
 * is the sum of the deltas' sizes, whatever the size of the tree; each layer's delta (its files with their sizes,
 * read from object headers, and its markers) is kept in the store's cache (store/delta-sizes.ts), keyed by the
 * layer, so a stack measured again costs a read of those entries and the walk of the layers added since.
 *
 * The result is plain JSON-able data (the web viewer uses it):
 * {
 *   top, layers, totalBytes, unionBytes, wastedBytes, efficiency,         // numbers; efficiency in [0, 1]
 *   userBytes, userWastedPercent,   // bytes of all layers but the bottom one (dive's "user" layers); wastedBytes as a percentage of them
 *   paths: [{ path, count, bytes, wastedBytes, layers: [id...] }],          // paths with wasted bytes, most wasted first
 *   perLayer: [{ id, message, bytes, wastedBytes }],                        // top first
 * }
 */
import { display, ObjectError } from '../errors.js';
import { layerSizes } from '../store/delta-sizes.js';
import { withWorkspace } from '../workspace/workspace.js';
import { resolveLayer } from './resolve.js';
import type { WorkspaceOptions } from './types.js';

export interface WastedPath {
  /** The path in the view (UTF-8 where it decodes). */
  path: string;
  /** How many layers hold an entry at this path. */
  count: number;
  /** Bytes all those entries hold, and the part of it the union hides. */
  bytes: number;
  wastedBytes: number;
  /** The layers holding it, top first. */
  layers: string[];
}

export interface LayerEfficiency { id: string; message: string; bytes: number; wastedBytes: number }

export interface EfficiencyReport {
  top: string | null;
  layers: number;
  totalBytes: number;
  unionBytes: number;
  wastedBytes: number;
  efficiency: number;
  userBytes: number;
  userWastedPercent: number;
  paths: WastedPath[];
  perLayer: LayerEfficiency[];
}

export interface EfficiencyOptions extends WorkspaceOptions {
  /** The stack top to measure (default HEAD). */
  layer?: string;
  /** At most this many paths in `paths` (default all). */
  limit?: number;
}

export async function efficiency(opts: EfficiencyOptions = {}): Promise<EfficiencyReport> {
  return withWorkspace(opts.cwd ?? process.cwd(), (ws) => {
    const store = ws.store;
    const top = opts.layer !== undefined ? resolveLayer(store, opts.layer).commit.oid : store.head();
    // What the layers above the one being walked hide.
    const hiddenWhole = new Set<string>();
    const hiddenChildren = new Set<string>();
    const dirAbove = new Set<string>();
    const isHidden = (path: string, dir: boolean): boolean => {
      if (hiddenWhole.has(path) || (!dir && dirAbove.has(path))) return true;
      for (let k = path.lastIndexOf('/'); ; k = path.lastIndexOf('/', k - 1)) {
        const anc = k < 0 ? '' : path.slice(0, k);
        if (hiddenChildren.has(anc) || (anc !== '' && hiddenWhole.has(anc))) return true;
        if (k < 0) return false;
      }
    };
    // Per path (by slot, in order of first sight): how many layers hold it, their bytes, the wasted part, and the
    // newest sighting of a list of them (each sighting: the layer's index in perLayer, the previous sighting). In
    // typed arrays: a deep stack over a large tree has tens of thousands of paths, most of them never wasted.
    const slotOf = new Map<string, number>();
    let counts = new Uint32Array(1024);
    let held = new Float64Array(1024);
    let lostAt = new Float64Array(1024);
    let newest = new Int32Array(1024);
    let sightLayer = new Int32Array(1024);
    let sightPrev = new Int32Array(1024);
    let sights = 0;
    const perLayer: LayerEfficiency[] = [];
    let total = 0;
    let wasted = 0;
    let bottomBytes = 0;
    // Down the stack by first parents, as Store.layers, each layer (its commit and its delta, walked once and
    // then read from the store's cache) taken as it comes.
    const seen = new Set<string>();
    for (let next = top; next; ) {
      if (seen.has(next)) throw new ObjectError(next, 'corrupt (commit cycle)');
      seen.add(next);
      const c = layerSizes(store, next);
      next = c.parent;
      let bytes = 0;
      let lost = 0;
      // A directory wholly hidden from above still counts, for its bytes. A layer's markers and entries hide only
      // what is below it.
      for (let k = 0; k < c.files.length; k++) {
        const p = c.files[k];
        const size = c.sizes[k];
        bytes += size;
        const hidden = isHidden(p, false);
        if (hidden) lost += size;
        let slot = slotOf.get(p);
        if (slot === undefined) {
          slot = slotOf.size;
          slotOf.set(p, slot);
          if (slot === counts.length) { counts = grow(counts); held = grow(held); lostAt = grow(lostAt); newest = grow(newest); }
          newest[slot] = -1;
        }
        counts[slot]++;
        held[slot] += size;
        if (hidden) lostAt[slot] += size;
        if (sights === sightLayer.length) { sightLayer = grow(sightLayer); sightPrev = grow(sightPrev); }
        sightLayer[sights] = perLayer.length;
        sightPrev[sights] = newest[slot];
        newest[slot] = sights++;
      }
      for (const p of c.opaque) hiddenChildren.add(p);
      for (const p of c.whiteouts) hiddenWhole.add(p);
      for (const p of c.dirs) dirAbove.add(p);
      for (const p of c.files) hiddenWhole.add(p);
      total += bytes;
      wasted += lost;
      bottomBytes = bytes;
      perLayer.push({ id: c.oid, message: c.message, bytes, wastedBytes: lost });
    }
    const paths: WastedPath[] = [];
    for (const [p, slot] of slotOf) {
      if (lostAt[slot] === 0) continue;
      const layers: string[] = [];
      for (let k = newest[slot]; k >= 0; k = sightPrev[k]) layers.push(perLayer[sightLayer[k]].id);
      paths.push({ path: display(p), count: counts[slot], bytes: held[slot], wastedBytes: lostAt[slot], layers: layers.reverse() });
    }
    paths.sort((a, b) => b.wastedBytes - a.wastedBytes || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    const userBytes = perLayer.length > 1 ? total - bottomBytes : 0;
    return {
      top,
      layers: perLayer.length,
      totalBytes: total,
      unionBytes: total - wasted,
      wastedBytes: wasted,
      efficiency: total === 0 ? 1 : (total - wasted) / total,
      userBytes,
      userWastedPercent: userBytes === 0 ? 0 : (100 * wasted) / userBytes,
      paths: opts.limit !== undefined ? paths.slice(0, opts.limit) : paths,
      perLayer,
    };
  }, { lock: false });
}

/** A typed array twice as long, with the same first elements. */
function grow<T extends Uint32Array | Int32Array | Float64Array>(a: T): T {
  const b = new (a.constructor as new (n: number) => T)(a.length * 2);
  b.set(a);
  return b;
}

import { Command, Option } from 'clipanion';
import { gc } from '../../api/gc.js';
import { GlayerCommand } from '../base.js';
import { formatBytes } from '../format.js';

export class GcCommand extends GlayerCommand {
  static paths = [['gc']];
  static usage = Command.Usage({
    category: 'History',
    description: 'repack the store into one pack with deltas and remove unreachable layers',
    details: `
      Every object a stack, tag, remote-tracking stack or reflog reaches goes into one new pack, versions of the
      same path stored as deltas of each other. Unreachable objects (layers of deleted stacks, squashed or reset
      away and out of every reflog) older than the grace period are removed: two weeks by default, as git;
      \`--prune=now\` removes them all, \`--prune=never\` none, or give a date or \`N.days.ago\`. Union-cache entries of
      unreachable layers go too, and so do the layer cache's extracted layers that no stack's live mount uses. Prints
      what it freed. Other glayer commands may run meanwhile; writers wait.
    `,
    examples: [['Collect garbage', '$0 gc'], ['Remove every unreachable object now', '$0 gc --prune=now']],
  });

  prune = Option.String('--prune', { description: 'Remove unreachable objects older than now|never|DATE (default 2.weeks.ago)' });

  async run(): Promise<number> {
    const r = await gc({ cwd: this.cwd, prune: this.prune, onProgress: this.progress });
    if (this.json) { this.printJson(r); return 0; }
    this.out(`${r.packed} objects in one pack of ${formatBytes(r.packBytes)} (${r.deltas} deltas; ${r.reusedWhole + r.reusedDeltas} copied from the old packs as they were); ${r.pruned} unreachable objects removed, ${r.keptUnreachable} kept (younger than the grace period)\n`);
    this.out(`objects: ${formatBytes(r.bytesBefore)} -> ${formatBytes(r.bytesAfter)} (freed ${formatBytes(Math.max(0, r.bytesBefore - r.bytesAfter))})\n`);
    if (r.cacheEntriesRemoved) this.out(`layer cache: ${r.cacheEntriesRemoved} unused ${r.cacheEntriesRemoved === 1 ? 'entry' : 'entries'} removed\n`);
    return 0;
  }
}

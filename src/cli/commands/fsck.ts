import { Command, Option } from 'clipanion';
import { fsck } from '../../api/fsck.js';
import { GlayerCommand } from '../base.js';

export class FsckCommand extends GlayerCommand {
  static paths = [['fsck']];
  static usage = Command.Usage({
    description: 'check the workspace and repair leftovers of interrupted commands',
    details: `
      Checks the stack ref, every object reachable from the stack (hashes included), every layer by the union
      rules, the writable layer and the view, and compares each layer-cache entry of the live views with a new
      extraction of its layer. Repairs what is safe to repair: a stale lock, staging directories and temporary
      files left by a glayer process that was killed, stale mounts, and cache entries that differ from their layer
      (replaced, unless a live view uses one now). It never changes the view, the writable layer or a stored
      object. Exits 1 when a problem remains.
    `,
    examples: [
      ['Check and repair', '$0 fsck'],
      ['Only report', '$0 fsck --dry-run'],
      ['As JSON: {ok, problems, repaired, notes, checked}', '$0 fsck --json'],
    ],
  });

  dryRun = Option.Boolean('--dry-run,-n', false, { description: 'Report what would be repaired; change nothing' });

  async run(): Promise<number> {
    const r = await fsck({ cwd: this.cwd, dryRun: this.dryRun });
    if (this.json) {
      this.printJson(r);
      return r.ok ? 0 : 1;
    }
    for (const l of r.repaired) this.out(`repaired: ${l}\n`);
    for (const n of r.notes) this.out(`note: ${n}\n`);
    for (const p of r.problems) this.out(`problem (${p.area}): ${p.message}\n`);
    this.out(r.ok
      ? `ok: ${r.checked.layers} layer(s), ${r.checked.objects} object(s)${r.checked.cacheEntries ? `, ${r.checked.cacheEntries} layer-cache entr${r.checked.cacheEntries === 1 ? 'y' : 'ies'}` : ''} checked\n`
      : `${r.problems.length} problem(s) found\n`);
    return r.ok ? 0 : 1;
  }
}

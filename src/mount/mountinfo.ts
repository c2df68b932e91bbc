/** The mounts this process sees (Linux /proc/self/mountinfo), for finding glayer's own live views. */
import * as fs from '../sys/fs.js';

export interface MountEntry {
  /** Mount point (absolute). */
  target: string;
  fstype: string;
  /** The source field: glayer names its mounts `glayer-KEY` (see live.ts). */
  source: string;
  /** Super-block options (the kernel overlay shows lowerdir/upperdir/workdir there). */
  options: string;
}

/** Octal escapes of mountinfo (`\040` for a space, ...). */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function listMounts(): MountEntry[] {
  let text: string;
  try { text = fs.readFileSync('/proc/self/mountinfo', 'latin1'); } catch { return []; }
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const dash = line.indexOf(' - ');
    if (dash < 0) continue;
    const a = line.slice(0, dash).split(' ');
    const b = line.slice(dash + 3).split(' ');
    out.push({ target: Buffer.from(unescape(a[4]), 'latin1').toString('utf8'), fstype: b[0], source: unescape(b[1] ?? ''), options: b[2] ?? '' });
  }
  return out;
}

/** The mounts at `target` (a path can have several stacked), last mounted last. */
export function mountsAt(target: string): MountEntry[] {
  return listMounts().filter((m) => m.target === target);
}

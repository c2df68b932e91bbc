import { Command, Option } from 'clipanion';
import { efficiency, type EfficiencyReport } from '../../api/efficiency.js';
import { UsageError } from '../../errors.js';
import { GlayerCommand } from '../base.js';
import { formatBytes, table } from '../format.js';

/** A byte count as dive takes it: `1000`, `20MB`, `1.5 GiB`. */
export function parseBytes(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]i?)?[bB]?\s*$/.exec(text);
  if (!m) throw new UsageError(`not a byte count: '${text}' (e.g. 1000, 20MB, 1.5GiB)`);
  const unit = (m[2] ?? '').toLowerCase();
  const pow = { '': 0, k: 1, m: 2, g: 3, t: 4 }[unit.replace('i', '')] ?? 0;
  return Math.round(Number(m[1]) * (unit.endsWith('i') ? 1024 : 1000) ** pow);
}

/** A ratio as dive takes it: `0.9`, or a percentage `90%`. */
export function parseRatio(text: string, option: string): number {
  const pct = text.trim().endsWith('%');
  const v = Number(pct ? text.trim().slice(0, -1) : text);
  if (!Number.isFinite(v) || v < 0 || (!pct && v > 1)) throw new UsageError(`${option} takes a ratio between 0 and 1 or a percentage (0.9, 90%), not '${text}'`);
  return pct ? v / 100 : v;
}

export interface CiRule { rule: string; limit: string; actual: string }

/** The thresholds a report breaks (dive's CI rules). */
export function ciFailures(r: EfficiencyReport, lowest?: number, wasted?: number, userPct?: number): CiRule[] {
  const out: CiRule[] = [];
  if (lowest !== undefined && r.efficiency < lowest) out.push({ rule: 'lowest-efficiency', limit: String(lowest), actual: r.efficiency.toFixed(4) });
  if (wasted !== undefined && r.wastedBytes > wasted) out.push({ rule: 'highest-wasted-bytes', limit: String(wasted), actual: String(r.wastedBytes) });
  if (userPct !== undefined && r.userWastedPercent / 100 > userPct) out.push({ rule: 'highest-user-wasted-percent', limit: String(userPct), actual: (r.userWastedPercent / 100).toFixed(4) });
  return out;
}

export class EfficiencyCommand extends GlayerCommand {
  static paths = [['efficiency']];
  static usage = Command.Usage({
    category: 'History',
    description: 'how many bytes the layers hold that the union hides (dive\'s measures)',
    details: `
      For the stack at LAYER (default HEAD): all layers' bytes, the union's bytes, the wasted bytes (held by a
      layer but hidden by a later one, replaced or deleted), the efficiency score (union bytes / all bytes), the
      wasted bytes as a share of the layers above the bottom one ("user" bytes, as dive counts them), and the
      paths that waste most. With \`--ci\` it checks dive's rules and exits 1, listing each rule broken:
      \`--lowest-efficiency\` (default 0.9), \`--highest-user-wasted-percent\` (a ratio, default 0.1) and
      \`--highest-wasted-bytes\` (off unless given).
    `,
    examples: [
      ['The report for the current stack', '$0 efficiency'],
      ['Gate a pipeline', '$0 efficiency --ci --lowest-efficiency 0.95 --highest-wasted-bytes 20MB'],
      ['As JSON', '$0 efficiency --json'],
    ],
  });

  layer = Option.String({ required: false, name: 'LAYER' });
  top = Option.String('-n,--top', { description: 'Show the N paths that waste most (default 10)' });
  ci = Option.Boolean('--ci', false, { description: 'Check the thresholds; exit 1 when one is broken' });
  lowest = Option.String('--lowest-efficiency', { description: 'CI: fail below this efficiency R (0..1)' });
  wasted = Option.String('--highest-wasted-bytes', { description: 'CI: fail above B wasted bytes' });
  userPct = Option.String('--highest-user-wasted-percent', { description: 'CI: fail above this ratio P of wasted to user bytes' });

  async run(): Promise<number> {
    const n = this.top === undefined ? 10 : Number(this.top);
    if (!Number.isInteger(n) || n < 0) throw new UsageError(`-n takes a whole number, not '${this.top}'`);
    if (!this.ci && (this.lowest ?? this.wasted ?? this.userPct) !== undefined) throw new UsageError('the thresholds apply with --ci');
    const lowest = this.lowest !== undefined ? parseRatio(this.lowest, '--lowest-efficiency') : this.ci ? 0.9 : undefined;
    const wasted = this.wasted !== undefined ? parseBytes(this.wasted) : undefined;
    const userPct = this.userPct !== undefined ? parseRatio(this.userPct, '--highest-user-wasted-percent') : this.ci ? 0.1 : undefined;
    const r = await efficiency({ cwd: this.cwd, layer: this.layer });
    const failures = this.ci ? ciFailures(r, lowest, wasted, userPct) : [];
    if (this.json) {
      this.printJson(this.ci ? { ...r, ci: { pass: failures.length === 0, failures } } : r);
      return failures.length ? 1 : 0;
    }
    this.out(table([
      ['layers', String(r.layers)],
      ['total bytes', `${r.totalBytes} (${formatBytes(r.totalBytes)})`],
      ['union bytes', `${r.unionBytes} (${formatBytes(r.unionBytes)})`],
      ['wasted bytes', `${r.wastedBytes} (${formatBytes(r.wastedBytes)})`],
      ['efficiency', `${(100 * r.efficiency).toFixed(4)} %`],
      ['user wasted', `${r.userWastedPercent.toFixed(4)} % of ${r.userBytes} bytes above the bottom layer`],
    ]));
    if (r.paths.length && n > 0) {
      this.out('\n' + table([['COUNT', 'WASTED', 'PATH'], ...r.paths.slice(0, n).map((p) => [String(p.count), formatBytes(p.wastedBytes), p.path])]));
    }
    if (this.ci) {
      if (failures.length === 0) this.out('\nCI: PASS\n');
      else {
        this.out('\nCI: FAIL\n');
        for (const f of failures) this.out(`  ${f.rule}: ${f.actual} breaks the limit ${f.limit}\n`);
      }
    }
    return failures.length ? 1 : 0;
  }
}

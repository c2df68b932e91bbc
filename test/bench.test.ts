// The benchmark as a correctness check: `bench/bench.ts --quick` builds every workload, runs every row through
// the built CLI, and verifies the views, commits and stores against native git. Times are never asserted.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { liveBackends } from './helpers/live.js';
import { tmpdir } from './helpers/tmp.js';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));

interface Row { id: number; operation: string; error?: string; glayer: { stats: { median: number } } | null; met: boolean | null }
interface Check { name: string; ok: boolean; detail: string }

test('bench --quick: every row runs and every check passes', () => {
  const dir = tmpdir('glayer-bench-test-');
  const out = join(dir, 'bench.json');
  // One timed run per side is enough to check results; the timing itself is not under test.
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'bench.ts'), '--quick', '--runs', '1', '--json', out, '--dir', dir], {
    cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 26,
  });
  assert.ok(fs.existsSync(out), `no JSON written; exit ${r.status}\n${r.stderr.slice(-3000)}`);
  const res = JSON.parse(fs.readFileSync(out, 'utf8')) as { ok: boolean; rows: Row[]; checks: Check[]; quick: boolean };
  const failed = res.checks.filter((c) => !c.ok);
  assert.equal(failed.map((c) => `${c.name}: ${c.detail}`), []);
  assert.ok(res.checks.length >= 30, `only ${res.checks.length} checks ran`);
  assert.ok(res.quick);
  const ids = res.rows.map((x) => x.id);
  for (const id of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24]) assert.ok(ids.includes(id), `row ${id} missing from ${ids}`);
  for (const row of res.rows) {
    assert.is(row.error, undefined, `row ${row.id}: ${row.error}`);
    assert.ok(row.glayer && Number.isFinite(row.glayer.stats.median), `row ${row.id} has no glayer figure`);
    assert.type(row.met, 'boolean');
  }
  assert.ok(res.ok);
  assert.is(r.status, 0, r.stderr.slice(-2000));
  assert.match(r.stdout, /checks: \d+ passed, 0 failed/);
  // The temporary workloads are removed.
  assert.equal(fs.readdirSync(dir).filter((f) => f.startsWith('glayer-bench-')), []);
});

test.run();

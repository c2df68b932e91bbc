// Whiteout names and entries, classified by the spec's rules.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EMPTY_BLOB, EMPTY_TREE, type Mode } from '../../src/core/tree.js';
import { OPAQUE_MARKER, classifyEntry, classifyName, isReserved, markerEntry, whiteoutName } from '../../src/core/whiteout.js';

const NAMES: Array<[string, string]> = [
  ['a', 'none'], ['.wh', 'none'], ['wh.a', 'none'], ['.whx', 'none'], ['a.wh.b', 'none'],
  ['.wh.a', 'whiteout:a'], ['.wh..a', 'whiteout:.a'], ['.wh.a b', 'whiteout:a b'], ['.wh.\xc3\xa9', 'whiteout:\xc3\xa9'],
  ['.wh..wh..opq', 'opaque'],
  ['.wh.', 'invalid'], ['.wh..', 'invalid'], ['.wh...', 'invalid'], ['.wh..wh.', 'invalid'], ['.wh..wh.foo', 'invalid'],
  ['.wh..wh..opqx', 'invalid'], ['.wh..wh.opq', 'invalid'], ['.wh..git', 'invalid'], ['.wh.GIT~1', 'invalid'], ['.wh.a/b', 'invalid'],
];

for (const [name, want] of NAMES) {
  test(`classifyName ${JSON.stringify(name)} -> ${want}`, () => {
    const m = classifyName(name);
    const got = m.kind === 'whiteout' ? `whiteout:${m.target}` : m.kind;
    assert.is(got, want);
    if (m.kind === 'invalid') assert.ok(m.reason.length > 0);
    assert.is(isReserved(name), want !== 'none');
  });
}

const ENTRIES: Array<[string, Mode, string, string]> = [
  ['empty regular file', '100644', EMPTY_BLOB, 'whiteout'],
  ['empty executable file', '100755', EMPTY_BLOB, 'whiteout'],
  ['non-empty file', '100644', 'd670460b4b4aece5915caf5c68d12f560a9fe3e4', 'invalid'],
  ['directory (a marker with children)', '40000', 'd670460b4b4aece5915caf5c68d12f560a9fe3e4', 'invalid'],
  ['empty directory', '40000', EMPTY_TREE, 'invalid'],
  ['symlink', '120000', EMPTY_BLOB, 'invalid'],
  ['submodule', '160000', EMPTY_BLOB, 'invalid'],
];
for (const [what, mode, oid, want] of ENTRIES) {
  test(`classifyEntry: a marker that is a ${what} is ${want}`, () => {
    assert.is(classifyEntry({ name: '.wh.x', mode, oid }).kind, want);
    assert.is(classifyEntry({ name: OPAQUE_MARKER, mode, oid }).kind, want === 'whiteout' ? 'opaque' : 'invalid');
  });
}

test('classifyEntry: a non-marker is none whatever its kind', () => {
  assert.is(classifyEntry({ name: 'x', mode: '40000', oid: EMPTY_TREE }).kind, 'none');
});

test('whiteoutName / markerEntry', () => {
  assert.is(whiteoutName('a'), '.wh.a');
  assert.equal(markerEntry('.wh.a'), { name: '.wh.a', mode: '100644', oid: EMPTY_BLOB });
});

test.run();

// Byte-string paths and the names git refuses (nameProblem / isDotGit), as git's verify_path does.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { basename, compareBytes, dirname, isAncestorOrSelf, isDotGit, join, nameProblem, splitPath, toBytes } from '../../src/core/path.js';

test('toBytes: UTF-8 text as a latin1 byte string', () => {
  assert.is(toBytes('abc'), 'abc');
  assert.is(toBytes('\u00e9'), '\xc3\xa9');
  assert.is(Buffer.from(toBytes('\u{1f600}'), 'latin1').toString('utf8'), '\u{1f600}');
});

test('join / basename / dirname', () => {
  const cases: Array<[string, string, string]> = [['', 'a', 'a'], ['a', 'b', 'a/b'], ['a/b', 'c', 'a/b/c']];
  for (const [p, n, want] of cases) {
    assert.is(join(p, n), want);
    assert.is(basename(want), n);
    assert.is(dirname(want), p);
  }
});

test('isAncestorOrSelf is by path component, not by string prefix', () => {
  const cases: Array<[string, string, boolean]> = [
    ['', 'a', true], ['a', 'a', true], ['a', 'a/b', true], ['a', 'ab', false], ['a/b', 'a', false], ['a/b', 'a/b/c/d', true], ['a/b', 'a/bc', false],
  ];
  for (const [a, b, want] of cases) assert.is(isAncestorOrSelf(a, b), want, `${a} ${b}`);
});

test('compareBytes is byte order, not locale order', () => {
  const names = ['b', 'B', 'a', '\xc3\xa9', 'e', 'Z', '_', '.a', 'a-b', 'a/b', 'a.b'];
  const want = [...names].sort((x, y) => Buffer.compare(Buffer.from(x, 'latin1'), Buffer.from(y, 'latin1')));
  assert.equal([...names].sort(compareBytes), want);
});

const BAD: Array<[string, string]> = [
  ['', 'empty name'], ['.', "'.'"], ['..', "'..'"], ['a/b', "'/'"], ['/', "'/'"], ['a\0b', 'NUL'],
  ['.git', '.git'], ['.GIT', '.git'], ['.Git', '.git'], ['.git.', '.git'], ['.git..', '.git'], ['.git ', '.git'], ['.git. . ', '.git'],
  ['git~1', '.git'], ['GIT~1', '.git'], ['git~1.', '.git'],
  [toBytes('.g\u200cit'), '.git'], [toBytes('.\u200dgit'), '.git'], [toBytes('\ufeff.git'), '.git'], [toBytes('.GI\u206aT'), '.git'],
];
for (const [name, why] of BAD) {
  test(`nameProblem refuses ${JSON.stringify(Buffer.from(name, 'latin1').toString('utf8'))}`, () => {
    const p = nameProblem(name);
    assert.ok(p !== null, 'accepted');
    assert.ok(p!.includes(why), p!);
  });
}

const GOOD = ['a', '...', '.gitignore', '.gitmodules', '.git2', 'git', 'git~2', '.wh.x', 'a b', '-rf', '\xff\xfe', toBytes('\u00e9'), '.g it', 'x.git'];
test('nameProblem accepts ordinary and odd-but-valid names', () => {
  for (const n of GOOD) assert.is(nameProblem(n), null, n);
  assert.not.ok(isDotGit('.gitignore'));
});

test('splitPath: components, refusing bad ones', () => {
  assert.equal(splitPath('a/b/c'), ['a', 'b', 'c']);
  assert.equal(splitPath('./a//b/'), ['a', 'b']);
  assert.throws(() => splitPath('a/../b'), /'\.\.'/);
  assert.throws(() => splitPath('x/.git/config'), /\.git/);
});

test.run();

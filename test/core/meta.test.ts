// The metadata manifest's text: parse and print round-trip, quoting, and every malformed line refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { META_HEADER, MetaParseError, formatManifest, formatRecord, parseManifest, quote, sameRecord, type MetaRecord } from '../../src/core/meta.js';

const doc = (...lines: string[]): string => [META_HEADER, ...lines, ''].join('\n');

test('the documented example parses and prints back byte for byte', () => {
  const text = doc(
    '. mode=755',
    'dev/null type=char dev=1,3 mode=666',
    'etc/shadow mode=640 gid=42',
    'home/app mode=750 uid=1000 gid=1000',
    'run/fifo type=fifo',
    'tmp mode=1777',
    'usr/bin/passwd mode=4755',
    'usr/bin/perl5.36.0 link=usr/bin/perl',
    'usr/bin/ping xattr.security.capability=0sAQAAAgAgAAAAAAAAAAAAAAAAAAA= xattr.user.note="hello world"',
    'usr/share/doc/x mtime=1700000000.5',
  );
  const m = parseManifest(text);
  assert.is(m.size, 10);
  assert.equal(m.get('dev/null'), { type: 'char', dev: [1, 3], mode: 0o666 });
  assert.is(m.get('usr/bin/passwd')!.mode, 0o4755);
  assert.is(m.get('home/app')!.uid, 1000);
  assert.is(m.get('usr/bin/perl5.36.0')!.link, 'usr/bin/perl');
  assert.is(m.get('usr/bin/ping')!.xattrs!.get('user.note')!.toString(), 'hello world');
  assert.is(m.get('usr/bin/ping')!.xattrs!.get('security.capability')!.length, 20);
  assert.is(formatManifest(m)!.toString('latin1'), text);
});

const QUOTED: Array<[string, string]> = [
  ['a space', 'with space/x'],
  ['a tab and a newline', 'a\tb\nc'],
  ['a quote and a backslash', 'q"\\'],
  ['an equals sign', 'a=b'],
  ['a leading hash', '#x'],
  ['bytes that are not UTF-8', 'caf\xe9'],
  ['UTF-8', 'caf\xc3\xa9'],
  ['DEL', 'a\x7fb'],
];
for (const [name, path] of QUOTED) {
  test(`a path with ${name} is quoted and read back`, () => {
    const line = formatRecord(path, { uid: 7 });
    assert.ok(line.startsWith('"'), line);
    const back = parseManifest(doc(line));
    assert.equal([...back.keys()], [path]);
    assert.is(back.get(path)!.uid, 7);
  });
}

test('a plain path is written raw, a link target is quoted like a path', () => {
  assert.is(formatRecord('usr/bin/b', { link: 'usr/bin/a b' }), 'usr/bin/b link="usr/bin/a b"');
  assert.is(quote('a\x01'), '"a\\001"');
});

test('records print sorted in byte order, whatever the map order; empty records are left out', () => {
  const m = new Map<string, MetaRecord>([['b', { uid: 1 }], ['a/b', { gid: 2 }], ['a', { mode: 0o700 }], ['c', {}], ['B', { mtime: '5' }]]);
  assert.is(formatManifest(m)!.toString(), doc('B mtime=5', 'a mode=700', 'a/b gid=2', 'b uid=1'));
  assert.is(formatManifest(new Map([['x', {}]])), null);
});

test('sameRecord: owner 0 equals no owner; xattrs compared by value', () => {
  assert.ok(sameRecord({ uid: 0 }, {}));
  assert.not.ok(sameRecord({ mode: 0o644 }, {}));
  assert.ok(sameRecord({ xattrs: new Map([['a', Buffer.from('x')]]) }, { xattrs: new Map([['a', Buffer.from('x')]]) }));
  assert.not.ok(sameRecord({ xattrs: new Map([['a', Buffer.from('x')]]) }, { xattrs: new Map([['a', Buffer.from('y')]]) }));
});

const BAD: Array<[string, string, RegExp]> = [
  ['no header', 'a uid=1\n', /first line/],
  ['no final newline', `${META_HEADER}\na uid=1`, /newline/],
  ['unsorted', doc('b uid=1', 'a uid=1'), /sorted/],
  ['a path twice', doc('a uid=1', 'a gid=1'), /twice/],
  ['no fields', doc('a'), /at least one field/],
  ['two spaces', doc('a  uid=1'), /one space/],
  ['unknown field', doc('a owner=root'), /unknown field/],
  ['a field twice', doc('a uid=1 uid=2'), /twice/],
  ['negative uid', doc('a uid=-1'), /bad uid/],
  ['mode of 5 digits', doc('a mode=10755'), /bad mode/],
  ['mode not octal', doc('a mode=999'), /bad mode/],
  ['device without numbers', doc('a type=char'), /needs dev/],
  ['numbers without a device', doc('a dev=1,3'), /only for/],
  ['unknown type', doc('a type=socket'), /unknown type/],
  ['mtime with letters', doc('a mtime=yesterday'), /bad mtime/],
  ['link to a later path', doc('a link=b'), /earlier path/],
  ['link to itself', doc('a link=a'), /earlier path/],
  ['a dot-dot path', doc('../etc/passwd uid=1'), /invalid path/],
  ['an absolute path', doc('/etc uid=1'), /invalid path/],
  ['a .git path', doc('.git/config uid=1'), /invalid path/],
  ['a marker path', doc('a/.wh.b uid=1'), /whiteout marker/],
  ['a bad xattr value', doc('a xattr.user.x=plain'), /bad xattr value/],
  ['an empty xattr name', doc('a xattr.="x"'), /empty xattr name/],
  ['an unterminated quote', doc('"a uid=1'), /unterminated/],
  ['a bad escape', doc('"a\\q" uid=1'), /bad escape/],
];
for (const [name, text, want] of BAD) {
  test(`refused: ${name}`, () => {
    try {
      parseManifest(text);
      assert.unreachable('parsed');
    } catch (e) {
      assert.instance(e, MetaParseError);
      assert.match((e as Error).message, want);
      assert.match((e as Error).message, /^line \d+: /);
    }
  });
}

test.run();

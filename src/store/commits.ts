/** Commit objects: parse and format (git's format; the message is kept verbatim). */
import { ObjectError } from '../errors.js';

export interface Signature { name: string; email: string; timestamp: number; tz: string }

export interface Commit {
  oid: string;
  tree: string;
  parents: string[];
  author: Signature;
  committer: Signature;
  message: string;
}

function parseSig(oid: string, line: string): Signature {
  const m = /^(.*) <([^>]*)> (-?\d+) ([+-]\d{4})$/.exec(line);
  if (!m) return { name: line, email: '', timestamp: 0, tz: '+0000' };
  return { name: m[1], email: m[2], timestamp: Number(m[3]), tz: m[4] };
}

export function parseCommit(oid: string, data: Buffer): Commit {
  const text = data.toString('utf8');
  const end = text.indexOf('\n\n');
  const head = end < 0 ? text : text.slice(0, end);
  const message = end < 0 ? '' : text.slice(end + 2);
  let tree = '';
  const parents: string[] = [];
  let author: Signature | null = null;
  let committer: Signature | null = null;
  for (const line of head.split('\n')) {
    if (line.startsWith('tree ')) tree = line.slice(5);
    else if (line.startsWith('parent ')) parents.push(line.slice(7));
    else if (line.startsWith('author ')) author = parseSig(oid, line.slice(7));
    else if (line.startsWith('committer ')) committer = parseSig(oid, line.slice(10));
  }
  if (!/^[0-9a-f]{40}$/.test(tree) || parents.some((p) => !/^[0-9a-f]{40}$/.test(p))) throw new ObjectError(oid, 'corrupt (malformed commit)');
  const none = { name: '', email: '', timestamp: 0, tz: '+0000' };
  return { oid, tree, parents, author: author ?? none, committer: committer ?? author ?? none, message };
}

function fmtSig(s: Signature): string {
  return `${s.name} <${s.email}> ${s.timestamp} ${s.tz}`;
}

export function formatCommit(c: Omit<Commit, 'oid'>): Buffer {
  const lines = [`tree ${c.tree}`, ...c.parents.map((p) => `parent ${p}`), `author ${fmtSig(c.author)}`, `committer ${fmtSig(c.committer)}`];
  let msg = c.message;
  if (!msg.endsWith('\n')) msg += '\n';
  return Buffer.from(lines.join('\n') + '\n\n' + msg, 'utf8');
}

/** A signature from git's environment variables, else the given defaults. */
export function signatureFromEnv(kind: 'AUTHOR' | 'COMMITTER', fallback: { name: string; email: string }, now = new Date()): Signature {
  const env = process.env;
  const name = env[`GIT_${kind}_NAME`] ?? fallback.name;
  const email = env[`GIT_${kind}_EMAIL`] ?? fallback.email;
  let timestamp = Math.floor(now.getTime() / 1000);
  let tz = tzString(now);
  const date = env[`GIT_${kind}_DATE`];
  if (date) {
    const m = /^@?(\d+)(?: ([+-]\d{4}))?$/.exec(date.trim());
    if (m) { timestamp = Number(m[1]); tz = m[2] ?? '+0000'; }
    else { const d = new Date(date); if (!isNaN(d.getTime())) timestamp = Math.floor(d.getTime() / 1000); }
  }
  return { name: sanitize(name), email: sanitize(email), timestamp, tz };
}

function sanitize(s: string): string {
  return s.replace(/[<>\n]/g, '').trim();
}

function tzString(d: Date): string {
  const off = -d.getTimezoneOffset();
  const sign = off < 0 ? '-' : '+';
  const a = Math.abs(off);
  return `${sign}${String(Math.floor(a / 60)).padStart(2, '0')}${String(a % 60).padStart(2, '0')}`;
}

import { Command, Option } from 'clipanion';
import { show, type ShownLayer } from '../../api/show.js';
import { UsageError } from '../../errors.js';
import { DiffOutputCommand, type Output } from '../diff-format.js';

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** git's default date format, in the signature's own time zone: `Thu Apr 7 15:13:13 2005 -0700`. */
export function gitDate(timestamp: number, tz: string): string {
  const m = /^([+-])(\d\d)(\d\d)$/.exec(tz);
  const offset = m ? (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3])) : 0;
  const d = new Date((timestamp + offset * 60) * 1000);
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${DAYS[d.getUTCDay()]} ${MONTHS[d.getUTCMonth()]} ${d.getUTCDate()} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} ${d.getUTCFullYear()} ${m ? tz : '+0000'}`;
}

export class ShowCommand extends DiffOutputCommand {
  static paths = [['show']];
  static usage = Command.Usage({
    description: 'show a layer: its id, author, date and message, then its diff',
    details: `
      \`glayer show [OPTIONS] [LAYER] [-- PATH...]\`

      Like \`git show\`: the layer's id, author, date and message, then what it changed against the union
      beneath it, as \`glayer diff LAYER\` prints it. LAYER defaults to HEAD, the stack top; it is named as for
      \`glayer diff\`. PATHs after \`--\` limit the diff.
    `,
    examples: [
      ['The top layer', '$0 show'],
      ['A layer by id prefix, only its diffstat', '$0 show 1a2b3c4d --stat'],
      ['The layer below the top, only under usr/', '$0 show HEAD~1 -- usr'],
      ['As JSON: {id, parent, author, committer, message, files}', '$0 show --json'],
    ],
  });

  args = Option.Rest({ name: 'LAYER -- PATH' });

  async run(): Promise<number> {
    const { names, paths } = this.splitArgs(this.args);
    if (names.length > 1) throw new UsageError(`show takes one layer (got ${names.length}); put paths after '--'`);
    const format = this.format;
    const context = this.contextLines;
    const color = format !== 'json' && this.colored;
    let out: Output;
    let first = true;
    const count = await this.render(format, async (r, o) => {
      out = o;
      await show({
        cwd: this.cwd,
        layer: names[0],
        paths,
        context,
        content: format !== 'name-only' && format !== 'name-status',
        ...this.renameOptions,
        timeoutMs: this.timeoutMs,
        onLayer: (l) => (format === 'json' ? out.text(layerJsonHead(l)) : out.text(layerHeader(l, color))),
        onFile: async (f) => {
          // A blank line between the message and the first file, as git prints it.
          if (first && format !== 'json') await out.text('\n');
          first = false;
          await r.file(f);
        },
      });
    });
    if (count !== null && format === 'json') this.out('}\n');
    return 0;
  }
}

function layerHeader(l: ShownLayer, color: boolean): string {
  const id = `layer ${l.id}`;
  const message = l.message.replace(/\n+$/, '').split('\n').map((line) => '    ' + line).join('\n');
  return `${color ? `\x1b[33m${id}\x1b[m` : id}\nAuthor: ${l.author.name} <${l.author.email}>\nDate:   ${gitDate(l.author.timestamp, l.author.tz)}\n\n${message}\n`;
}

/** The layer's fields, then `"files": ` for the array the renderer writes. */
function layerJsonHead(l: ShownLayer): string {
  const body = JSON.stringify({ ...l, message: l.message.replace(/\n+$/, '') }, null, 2);
  return body.slice(0, body.lastIndexOf('\n}')) + ',\n  "files": ';
}

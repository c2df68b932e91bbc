import { Command, Option } from 'clipanion';
import { importImage } from '../../api/import.js';
import { GlayerCommand } from '../base.js';

export class ImportCommand extends GlayerCommand {
  static paths = [['import']];
  static usage = Command.Usage({
    description: 'import an OCI or Docker image (or a root filesystem tarball) as a new stack',
    details: `
      SOURCE uses skopeo's transport names: \`oci:DIR[:TAG]\` (an OCI image layout), \`oci-archive:FILE[:TAG]\`,
      \`docker-archive:FILE[:NAME:TAG]\` (what \`docker save\` and \`podman save\` write) and \`tar:FILE\` (a root
      filesystem tarball, gzip, zstd or plain, as one layer). Each image layer becomes one layer, bottom first,
      with its history entry as message and its \`created\` time as date; owners, modes, mtimes, xattrs, devices
      and hardlinks go to each layer's metadata manifest. The image config is kept with the stack (see
      \`glayer image-config\`). Every digest and diff_id is checked and every tar entry vetted: a bad image is
      refused with one line naming the layer and the entry, and nothing is imported. The new stack is named
      after the image's tag unless \`--stack\` names it; switch to it with \`glayer init --from\` or git.
    `,
    examples: [
      ['Import what podman saved', '$0 import docker-archive:app.tar'],
      ['Import a tag of an OCI layout into a named stack', '$0 import oci:./layout:v2 --stack app'],
      ['Pick the arm64 image of a multi-platform index', '$0 import oci:./layout:v2 --platform linux/arm64'],
      ['A root filesystem tarball as one layer', '$0 import tar:rootfs.tar.gz --stack base'],
    ],
  });

  source = Option.String({ name: 'SOURCE' });
  stack = Option.String('--stack', { description: 'Name of the new stack (default: from the image tag)' });
  platform = Option.String('--platform', { description: 'OS/ARCH[/VARIANT] to pick from a multi-platform index (default linux/amd64)' });

  async run(): Promise<number> {
    const r = await importImage({ cwd: this.cwd, source: this.source, stack: this.stack, platform: this.platform, onProgress: this.progress });
    if (this.json) this.printJson(r);
    else {
      for (const l of r.layers) this.out(`${l.id.slice(0, 12)}  ${l.diffId.slice(0, 19)}  ${l.message}\n`);
      this.out(`Imported ${r.layers.length} layer${r.layers.length === 1 ? '' : 's'} into stack ${r.stack} (${r.head.slice(0, 12)})\n`);
    }
    return 0;
  }
}

import { Command, Option } from 'clipanion';
import { exportImage } from '../../api/export.js';
import { GlayerCommand } from '../base.js';

export class ExportCommand extends GlayerCommand {
  static paths = [['export']];
  static usage = Command.Usage({
    description: 'export a stack as an OCI or Docker image',
    details: `
      DEST is \`oci:DIR[:TAG]\` (an OCI layout, created or added to: the index entry of the same tag is
      replaced), \`oci-archive:FILE[:TAG]\` or \`docker-archive:FILE[:NAME:TAG]\` (for \`podman load\`,
      \`docker load\`). One image layer per glayer layer, or one layer of the union with \`--squash\`. Whiteouts
      and opaque markers are written as \`.wh.\` entries, the metadata manifest as tar headers, and the config
      kept with the stack (\`glayer image-config\`) with diff_ids and one history entry per layer. LAYER exports
      the stack up to that layer (a layer id, \`HEAD~2\`, or another stack's name). The same layers always
      give the same digests.
    `,
    examples: [
      ['Export the stack for podman', '$0 export docker-archive:app.tar:localhost/app:1.0'],
      ['Add a tag to an OCI layout', '$0 export oci:./layout:v3'],
      ['One layer, the union', '$0 export --squash oci-archive:app.oci.tar:flat'],
    ],
  });

  destination = Option.String({ name: 'DEST' });
  layer = Option.String({ name: 'LAYER', required: false });
  squash = Option.Boolean('--squash', false, { description: 'Write one image layer holding the union' });

  async run(): Promise<number> {
    const r = await exportImage({ cwd: this.cwd, dest: this.destination, layer: this.layer, squash: this.squash, onProgress: this.progress });
    if (this.json) this.printJson(r);
    else {
      for (const l of r.layers) this.out(`${l.digest}  ${l.size} bytes\n`);
      this.out(`Exported ${r.layers.length} layer${r.layers.length === 1 ? '' : 's'} to ${r.dest}${r.manifest ? ` (manifest ${r.manifest})` : ''}\n`);
    }
    return 0;
  }
}

/**
 * Image names in skopeo's transport syntax (containers-transports(5)): what a user types for `glayer import`,
 * `glayer export` and `glayer init --from`. Pure: no fs.
 *
 *   oci:DIR[:TAG]                   an OCI image layout directory; TAG is the ref.name annotation
 *   oci-archive:FILE[:TAG]          the same layout as one tar file
 *   docker-archive:FILE[:NAME:TAG]  what `docker save` and `podman save` write (manifest.json, RepoTags)
 *   tar:FILE                        a root filesystem tarball (gzip, zstd or plain), imported as one layer
 *
 * As in skopeo, the path ends at the first ':' after the transport, so a path cannot contain one.
 */
import { UsageError } from '../errors.js';

export type ImageRef =
  | { transport: 'oci'; path: string; tag: string | null }
  | { transport: 'oci-archive'; path: string; tag: string | null }
  | { transport: 'docker-archive'; path: string; tag: string | null }
  | { transport: 'tar'; path: string; tag: null };

export const TRANSPORTS = ['oci', 'oci-archive', 'docker-archive', 'tar'] as const;

/** Does `s` name an image (starts with one of the transports)? */
export function isImageRef(s: string): boolean {
  const i = s.indexOf(':');
  return i > 0 && (TRANSPORTS as readonly string[]).includes(s.slice(0, i));
}

export function parseImageRef(s: string): ImageRef {
  const i = s.indexOf(':');
  const transport = i > 0 ? s.slice(0, i) : '';
  if (!(TRANSPORTS as readonly string[]).includes(transport)) {
    throw new UsageError(`not an image name: '${s}' (use oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG] or tar:FILE)`);
  }
  const rest = s.slice(i + 1);
  const j = rest.indexOf(':');
  const path = j < 0 ? rest : rest.slice(0, j);
  const tag = j < 0 ? null : rest.slice(j + 1);
  if (path === '') throw new UsageError(`no path in image name '${s}'`);
  if (tag === '') throw new UsageError(`empty tag in image name '${s}'`);
  switch (transport) {
    case 'tar':
      if (tag !== null) throw new UsageError(`tar: takes no tag: '${s}' (a path cannot contain ':')`);
      return { transport, path, tag: null };
    case 'docker-archive':
      if (tag !== null && !/^[^\s:@]+(:[\w][\w.-]{0,127})?$/.test(tag) && !/^@\d+$/.test(tag)) throw new UsageError(`invalid docker reference '${tag}' (NAME:TAG or @INDEX)`);
      return { transport, path, tag };
    default:
      if (tag !== null && !/^[A-Za-z0-9_][A-Za-z0-9._:@/+-]*$/.test(tag)) throw new UsageError(`invalid tag '${tag}'`);
      return { transport: transport as 'oci' | 'oci-archive', path, tag };
  }
}

/** A docker-archive RepoTags entry for NAME:TAG as given (a bare NAME gets :latest, as docker does). */
export function dockerRepoTag(tag: string): string {
  const slash = tag.lastIndexOf('/');
  return tag.slice(slash + 1).includes(':') ? tag : `${tag}:latest`;
}

/**
 * The stack a tagged image lands in by default: the tag with what git refuses in a branch name replaced
 * (`localhost/app:1.0` -> `app-1.0`, an OCI tag `v2` -> `v2`); null when there is no tag.
 */
export function stackNameFor(ref: ImageRef): string | null {
  let t = ref.tag;
  if (ref.transport === 'tar') t = ref.path.replace(/^.*\//, '').replace(/\.(tar|tgz|tar\.gz|tar\.zst|tzst)$/i, '');
  if (t === null || t === '' || t.startsWith('@')) return null;
  if (ref.transport === 'docker-archive') t = t.replace(/^.*\//, '');
  const name = t.replace(/:/g, '-').replace(/[^A-Za-z0-9._/-]/g, '-').replace(/\/+/g, '/').replace(/^[./-]+|[./]+$/g, '').replace(/\.\.+/g, '.').replace(/\.lock$/, '-lock');
  return name === '' ? null : name;
}

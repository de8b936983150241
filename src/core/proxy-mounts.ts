// `envoy-injector.io/proxy-mounts` (SPEC.md §4a): read-only Secret and ConfigMap volumes of the
// proxy, for what a user's own Envoy configuration refers to (TLS material, Lua scripts, …). The
// syntax, its validation, and the volumes and mounts it adds. Pure.
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { ADS_DIR, BOOTSTRAP_DIR, OVERRIDE_DIR, PROXY_MOUNT_VOLUME_PREFIX } from '../constants.ts';
import type { Container, ProxyMount, Volume } from './types.ts';

type VolumeMount = NonNullable<Container['volumeMounts']>[number];
import type { Parsed } from './values.ts';

/** The most mounts one pod's proxy gets: each is a volume the kubelet sets up and keeps in sync. */
export const MAX_PROXY_MOUNTS = 16;

/**
 * Paths no proxy mount may be at, inside or above: the injector's own mounts (the bootstrap, issue
 * 12a's override, the ADS CA and client certificate), and the kernel's file systems.
 */
export const RESERVED_MOUNT_PATHS: readonly string[] = [BOOTSTRAP_DIR, OVERRIDE_DIR, ADS_DIR, '/proc', '/sys', '/dev'];

/** A ConfigMap or Secret name: a DNS subdomain (RFC 1123), at most 253 characters. */
const SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** What a mount path may hold: no blanks, no `,` or `=` (the list's own syntax), no `:` (runtimes split on it). */
const PATH_CHARS = /^[A-Za-z0-9._@+~/-]+$/;

const inside = (path: string, dir: string): boolean => path === dir || path.startsWith(`${dir}/`);
/** Whether two mount paths would overlap: equal, or one inside the other. */
export const overlaps = (a: string, b: string): boolean => inside(a, b) || inside(b, a);

const ACCEPTED = 'comma-separated secret/NAME=/abs/path or configmap/NAME=/abs/path';

/** Why one mount path is refused, or undefined when it is fine. */
function pathProblem(path: string): string | undefined {
  if (!path.startsWith('/')) return `${JSON.stringify(path)} is not an absolute path`;
  if (!PATH_CHARS.test(path)) return `${JSON.stringify(path)} holds a character other than letters, digits and ._@+~/-`;
  if (path.split('/').includes('..')) return `${JSON.stringify(path)} holds ..`;
  if (path === '/' || posix.normalize(path) !== path || path.endsWith('/')) return `${JSON.stringify(path)} is not a normalized path (no //, /./ or trailing /; not /)`;
  const reserved = RESERVED_MOUNT_PATHS.find((dir) => overlaps(path, dir));
  if (reserved !== undefined) return `${path} overlaps ${reserved}, which the injector or the kernel uses`;
  return undefined;
}

/** Parses `secret/NAME=/abs/path,configmap/NAME=/abs/path` (empty: none), validating every item and their paths together. */
export function parseProxyMounts(text: string): Parsed<readonly ProxyMount[]> {
  const bad = (why: string): Parsed<readonly ProxyMount[]> => ({ ok: false, accepted: `${ACCEPTED} (${why})` });
  const items = text.trim() === '' ? [] : text.split(',').map((item) => item.trim());
  if (items.length > MAX_PROXY_MOUNTS) return bad(`at most ${MAX_PROXY_MOUNTS} mounts, not ${items.length}`);
  const mounts: ProxyMount[] = [];
  for (const item of items) {
    const match = /^(secret|configmap)\/([^=]*)=(.*)$/i.exec(item);
    if (match === null) return bad(`${JSON.stringify(item)} is not KIND/NAME=PATH`);
    const [, kind = '', name = '', path = ''] = match;
    if (!SUBDOMAIN.test(name)) return bad(`${JSON.stringify(name)} is not a Kubernetes object name`);
    const problem = pathProblem(path);
    if (problem !== undefined) return bad(problem);
    const clash = mounts.find((m) => overlaps(m.path, path));
    if (clash !== undefined) return bad(`${path} overlaps ${clash.path}`);
    mounts.push({ kind: kind.toLowerCase() as ProxyMount['kind'], name, path });
  }
  return { ok: true, value: mounts };
}

/** Writes mounts back in the syntax parseProxyMounts reads. */
export function formatProxyMounts(mounts: readonly ProxyMount[]): string {
  return mounts.map((m) => `${m.kind}/${m.name}=${m.path}`).join(',');
}

/**
 * Returns the volume name of a mount: `envoy-mount-<name>-<hash>`, a DNS label of at most 63
 * characters that depends only on the mount itself (its kind, name and path), so reordering the
 * list renames nothing, and two mounts of one object at two paths differ.
 */
export function proxyMountVolumeName(mount: ProxyMount): string {
  const hash = createHash('sha256').update(`${mount.kind}/${mount.name}=${mount.path}`).digest('hex').slice(0, 8);
  const room = 63 - PROXY_MOUNT_VOLUME_PREFIX.length - 1 - hash.length;
  const readable = mount.name.replace(/\./g, '-').slice(0, room).replace(/-+$/, '');
  return `${PROXY_MOUNT_VOLUME_PREFIX}${readable}-${hash}`;
}

/** Returns the volumes and envoy's read-only mounts of `mounts`. */
export function proxyMountVolumes(mounts: readonly ProxyMount[]): { volumes: Volume[]; volumeMounts: VolumeMount[] } {
  const volumes: Volume[] = [];
  const volumeMounts: VolumeMount[] = [];
  for (const mount of mounts) {
    const name = proxyMountVolumeName(mount);
    // Not optional: a missing object keeps the pod from starting with an event naming it, rather
    // than Envoy failing later on a missing file.
    volumes.push(mount.kind === 'secret' ? { name, secret: { secretName: mount.name } } : { name, configMap: { name: mount.name } });
    volumeMounts.push({ name, mountPath: mount.path, readOnly: true });
  }
  return { volumes, volumeMounts };
}

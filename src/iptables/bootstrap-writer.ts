// The part of envoy-init that renders the pod's bootstrap: it learns what only the running pod knows
// (its downward-API environment and labels file), renders with the same pure code `bootstrap -f` uses
// (core/pod-bootstrap.ts), and writes every file atomically into the bootstrap directory. Separate
// from applying iptables: a pod whose capture is installed by other means still needs it rendered.
import { closeSync, fsyncSync, fchmodSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { DOWNWARD_ENV, type PodIdentity } from '../core/bootstrap.ts';
import type { BootstrapRequest, InitInputs } from '../core/init-flags.ts';
import { OVERRIDE_VOLUME_NAME } from '../constants.ts';
import { BootstrapOverrideError } from '../core/bootstrap-override.ts';
import { OVERRIDE_FILE } from '../core/override-volume.ts';
import { podOverrideSource, renderBootstrapFiles } from '../core/pod-bootstrap.ts';
import { parseDownwardMap } from './downward.ts';
import { InitIptablesError } from './failures.ts';

/** Files are world-readable: envoy (UID 1337) reads what envoy-init (root) wrote. */
const FILE_MODE = 0o644;

const fail = (message: string): never => {
  throw new InitIptablesError({ kind: 'bootstrap', message: `cannot render the bootstrap: ${message}` });
};

/** Why a file operation failed, in a few words. */
function reasonOf(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT':
      return 'no such file or directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EROFS':
      return 'read-only file system';
    case 'ENOSPC':
      return 'no space left on the device';
    case 'ENOTDIR':
      return 'not a directory';
    default:
      return (error as Error).message;
  }
}

/**
 * Reads the pod's facts: the downward-API environment (every variable must be there; a pod gets them
 * from the injector) and, when asked, the labels file of the podinfo volume.
 */
export function readPodIdentity(
  request: BootstrapRequest,
  env: Readonly<Record<string, string | undefined>> = process.env,
): PodIdentity {
  const missing = DOWNWARD_ENV.filter((e) => env[e.name] === undefined).map((e) => e.name);
  if (missing.length > 0) {
    fail(
      `the environment lacks ${missing.join(', ')} (the injector sets them from the downward API; set them to run init-iptables --bootstrap-dir by hand)`,
    );
  }
  let labels: Record<string, string> = {};
  if (request.podLabelsPath !== null) {
    let text = '';
    try {
      text = readFileSync(request.podLabelsPath, 'utf8');
    } catch (error) {
      fail(`cannot read the pod's labels from ${request.podLabelsPath}: ${reasonOf(error)} (is the envoy-podinfo volume mounted?)`);
    }
    const parsed = parseDownwardMap(text);
    if (!parsed.ok) fail(`${request.podLabelsPath} is not a downward-API labels file: ${JSON.stringify(parsed.line.slice(0, 80))}`);
    else labels = parsed.map;
  }
  const value = (name: (typeof DOWNWARD_ENV)[number]['name']): string => env[name] as string;
  return {
    name: value('POD_NAME'),
    namespace: value('POD_NAMESPACE'),
    instanceIps: value('INSTANCE_IPS'),
    nodeName: value('NODE_NAME'),
    serviceAccount: value('SERVICE_ACCOUNT'),
    labels,
  };
}

/**
 * Reads the pod's override fragment from its ConfigMap's mounted file, when its flags name one;
 * fails with one line naming the ConfigMap. (With `optional: false` the kubelet does not start a
 * pod whose ConfigMap or key is missing; this covers a volume that is not mounted or not readable.)
 */
function readPodOverride(configMap: string | null, file: string): { text: string; source: string } | undefined {
  if (configMap === null) return undefined;
  const source = podOverrideSource(configMap);
  try {
    return { text: readFileSync(file, 'utf8'), source };
  } catch (error) {
    throw new InitIptablesError({
      kind: 'bootstrap-override',
      message: `cannot read the bootstrap override ${source} at ${file}: ${reasonOf(error)} (does the ConfigMap exist in the pod's namespace with that key, and is the ${OVERRIDE_VOLUME_NAME} volume mounted?)`,
    });
  }
}

/**
 * Writes `content` to `path` atomically: into a temporary file beside it (a fixed name, so a run
 * killed halfway leaves nothing a rerun does not overwrite), flushed, given its mode whatever the
 * umask, then renamed over the old file. A reader sees the old file or the new one, never a part.
 */
function writeAtomically(path: string, content: string): void {
  const temporary = join(path, '..', `.${path.split('/').pop() ?? 'file'}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(temporary, 'w', FILE_MODE);
    writeSync(fd, content);
    fchmodSync(fd, FILE_MODE);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(temporary, path);
  } catch (error) {
    if (fd !== undefined) closeSync(fd);
    rmSync(temporary, { force: true });
    throw error;
  }
}

/** What was written: the bootstrap file and every file beside it. */
export interface WrittenBootstrap {
  readonly dir: string;
  readonly files: readonly string[];
}

/**
 * Renders the bootstrap for `inputs` (with `ipv6` as decided for the capture) and writes it with the
 * hook scripts into the request's directory; throws InitIptablesError (kind `bootstrap`) with one
 * line naming what is missing or cannot be written. Rerunning it rewrites the same files.
 */
export function writeBootstrap(
  inputs: InitInputs & { readonly bootstrap: BootstrapRequest },
  ipv6: boolean,
  injectorVersion: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
  overrideFile: string = OVERRIDE_FILE,
): WrittenBootstrap {
  const { dir } = inputs.bootstrap;
  try {
    if (!statSync(dir).isDirectory()) fail(`${dir} is not a directory`);
  } catch (error) {
    if (error instanceof InitIptablesError) throw error;
    fail(`${dir}: ${reasonOf(error)} (is the envoy-bootstrap volume mounted?)`);
  }
  const pod = readPodIdentity(inputs.bootstrap, env);
  const podOverride = readPodOverride(inputs.proxy.bootstrapOverrideConfigMap, overrideFile);
  let files: readonly { name: string; content: string }[];
  try {
    files = renderBootstrapFiles(inputs, pod, ipv6, injectorVersion, podOverride).files;
  } catch (error) {
    if (!(error instanceof BootstrapOverrideError)) throw error;
    // One line: every problem, each naming its fragment and path.
    throw new InitIptablesError({ kind: 'bootstrap-override', message: `cannot merge the bootstrap override: ${error.message}` });
  }
  for (const file of files) {
    const path = join(dir, file.name);
    try {
      writeAtomically(path, file.content);
    } catch (error) {
      fail(`cannot write ${path}: ${reasonOf(error)} (envoy-init must be able to write the envoy-bootstrap volume)`);
    }
  }
  return { dir, files: files.map((f) => f.name) };
}

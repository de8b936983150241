// `envoy-injector cni-node`: the node agent (DaemonSet envoy-injector-node, SPEC.md §4c). It installs
// the CNI plugin on its node — this image's node binary and the app, and a small launcher named
// `envoy-injector-cni` in the CNI bin dir — writes the plugin's kubeconfig (its ServiceAccount's
// token, rewritten when the kubelet rotates it), appends the plugin to the first network
// configuration of the CNI conf dir and keeps it there (a primary CNI rewriting its file drops it),
// and on SIGTERM removes itself from the configuration again. It is the only privileged part of CNI
// mode: it writes host directories, and the plugin it installs runs as root on the node.
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import { dirname, join } from 'node:path';
import { stringify as stringifyYaml } from 'yaml';
import { commandHelp, parseFlags, type CommandSpec, type FlagSpec } from '../cli/flags.ts';
import { addPlugin, holdsPlugin, pluginEntry, primaryConfig, removePlugin } from './conflist.ts';
import { PLUGIN_TYPE } from './protocol.ts';

const PREFIX = 'envoy-injector cni-node';
/** The kubeconfig file the agent writes in the CNI conf dir (not a network configuration: no .conf). */
export const KUBECONFIG_FILE = 'envoy-injector-cni.kubeconfig';
const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** Where the agent installs and what it writes, as its container sees it and as the node does. */
export interface AgentOptions {
  readonly cniBinDir: string;
  readonly cniConfDir: string;
  /** Where the node binary and the app go (inside the container). */
  readonly installDir: string;
  /** The same directory as the node sees it (the launcher runs on the node). */
  readonly hostInstallDir: string;
  /** The CNI conf dir as the node sees it (the plugin reads its kubeconfig there). */
  readonly hostCniConfDir: string;
  readonly tokenFile: string;
  readonly caFile: string;
  readonly apiServer: string;
  readonly excludedNamespaces: readonly string[];
  /** The app to copy (package.json, node_modules, dist) and the node binary. */
  readonly appDir: string;
  readonly nodeBinary: string;
  readonly resyncMs: number;
}

/** Writes `text` to `path` atomically (a hidden temporary beside it, renamed over it). */
function writeAtomically(path: string, text: string, mode = 0o644): void {
  const temporary = join(dirname(path), `.${PLUGIN_TYPE}.tmp`);
  writeFileSync(temporary, text, { mode });
  chmodSync(temporary, mode);
  renameSync(temporary, path);
}

/** Returns the launcher installed as the plugin: runs the copied node with the copied app. */
export function launcherScript(hostInstallDir: string): string {
  return `#!/bin/sh
# envoy-injector-cni: installed by the envoy-injector-node DaemonSet; removed with it.
# The runtime's PATH may be short: nsenter and iptables are looked up in the usual places too.
PATH="$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
export PATH
exec "${hostInstallDir}/node" "${hostInstallDir}/app/dist/main.js" cni
`;
}

/** Returns the plugin's kubeconfig: the in-cluster API server, the cluster CA and the token. */
export function renderKubeconfig(server: string, caPem: string, token: string): string {
  return stringifyYaml({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'cluster', cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } }],
    users: [{ name: 'envoy-injector-node', user: { token } }],
    contexts: [{ name: 'envoy-injector-cni', context: { cluster: 'cluster', user: 'envoy-injector-node' } }],
    'current-context': 'envoy-injector-cni',
  });
}

/** One pass of the agent's work; returns what it changed (empty when everything was in place). */
export function reconcile(options: AgentOptions, installed: { binaries: boolean }): string[] {
  const changes: string[] = [];
  if (!installed.binaries) {
    mkdirSync(join(options.installDir, 'app'), { recursive: true });
    // Copied beside each other and replaced whole, so the launcher never runs half a copy.
    const staging = join(options.installDir, '.staging');
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(staging, { recursive: true });
    for (const part of ['package.json', 'node_modules', 'dist']) {
      const from = join(options.appDir, part);
      if (existsSync(from)) cpSync(from, join(staging, part), { recursive: true });
    }
    rmSync(join(options.installDir, 'app'), { recursive: true, force: true });
    renameSync(staging, join(options.installDir, 'app'));
    cpSync(options.nodeBinary, join(options.installDir, '.node.tmp'));
    chmodSync(join(options.installDir, '.node.tmp'), 0o755);
    renameSync(join(options.installDir, '.node.tmp'), join(options.installDir, 'node'));
    writeAtomically(join(options.cniBinDir, PLUGIN_TYPE), launcherScript(options.hostInstallDir), 0o755);
    installed.binaries = true;
    changes.push(`installed ${PLUGIN_TYPE} into ${options.cniBinDir}`);
  }
  const kubeconfigPath = join(options.cniConfDir, KUBECONFIG_FILE);
  const kubeconfig = renderKubeconfig(options.apiServer, readFileSync(options.caFile, 'utf8'), readFileSync(options.tokenFile, 'utf8').trim());
  const current = existsSync(kubeconfigPath) ? readFileSync(kubeconfigPath, 'utf8') : '';
  if (current !== kubeconfig) {
    // Holds a token: readable by root only.
    writeAtomically(kubeconfigPath, kubeconfig, 0o600);
    changes.push(current === '' ? `wrote ${kubeconfigPath}` : `rewrote ${kubeconfigPath} (token rotated)`);
  }
  const primary = primaryConfig(readdirSync(options.cniConfDir));
  if (primary === undefined) throw new Error(`no network configuration in ${options.cniConfDir} yet (the primary CNI writes one)`);
  const path = join(options.cniConfDir, primary);
  const entry = pluginEntry({ kubeconfig: join(options.hostCniConfDir, KUBECONFIG_FILE), excludedNamespaces: options.excludedNamespaces });
  const edit = addPlugin(primary, readFileSync(path, 'utf8'), entry);
  if (!edit.ok) throw new Error(edit.error);
  if (edit.changed) {
    if (primary.endsWith('.conflist')) writeAtomically(path, edit.text);
    else {
      // A single-plugin .conf becomes a conflist of the same name, which sorts right after it.
      const renamed = path.replace(/\.(conf|json)$/, '.conflist');
      writeAtomically(renamed, edit.text);
      rmSync(path);
    }
    changes.push(`added ${PLUGIN_TYPE} to ${primary}`);
  }
  return changes;
}

/** Removes the agent's entry from every configuration of the conf dir, its kubeconfig and launcher. */
export function uninstall(options: Pick<AgentOptions, 'cniConfDir' | 'cniBinDir' | 'installDir'>): string[] {
  const changes: string[] = [];
  for (const file of readdirSync(options.cniConfDir)) {
    if (file.startsWith('.') || !/\.(conflist|conf|json)$/.test(file)) continue;
    const path = join(options.cniConfDir, file);
    const text = readFileSync(path, 'utf8');
    if (!holdsPlugin(text)) continue;
    const edit = removePlugin(file, text);
    if (edit.ok && edit.changed) {
      writeAtomically(path, edit.text);
      changes.push(`removed ${PLUGIN_TYPE} from ${file}`);
    }
  }
  // The configuration no longer names the plugin: nothing runs it any more.
  rmSync(join(options.cniConfDir, KUBECONFIG_FILE), { force: true });
  rmSync(join(options.cniBinDir, PLUGIN_TYPE), { force: true });
  rmSync(options.installDir, { recursive: true, force: true });
  changes.push('removed the kubeconfig, the launcher and the installed files');
  return changes;
}

const dir = (name: string, doc: string): FlagSpec => ({ name, type: 'string', value: 'DIR', doc });

/** The agent's flags, with defaults fit for the DaemonSet of manifests/cni/. */
export const CNI_NODE_COMMAND: CommandSpec = {
  name: 'cni-node',
  summary: "CNI mode's node agent (DaemonSet envoy-injector-node): installs the plugin.",
  synopsis: 'cni-node [flags]',
  description: `The node agent of CNI mode, run by the DaemonSet envoy-injector-node on every node: installs the
CNI plugin envoy-injector-cni into the node's CNI bin dir, adds it to the first network
configuration of the CNI conf dir (again whenever that file is rewritten), writes the plugin's
kubeconfig from its ServiceAccount token, and on SIGTERM removes all of it. Runs in a pod
(KUBERNETES_SERVICE_HOST). Exits 0 after a clean uninstall, 1 when the uninstall failed, 2 on bad flags.`,
  flags: [
    dir('cni-bin-dir', "The node's CNI bin dir as the container mounts it (default /host/opt/cni/bin)."),
    dir('cni-conf-dir', "The node's CNI conf dir as the container mounts it (default /host/etc/cni/net.d)."),
    dir('install-dir', 'Where the node binary and the plugin go, as the container mounts it (default /host/opt/envoy-injector-cni).'),
    dir('host-install-dir', 'The same directory as the node sees it: the launcher runs on the node (default /opt/envoy-injector-cni).'),
    dir('host-cni-conf-dir', 'The CNI conf dir as the node sees it: the plugin reads its kubeconfig there (default /etc/cni/net.d).'),
    {
      name: 'excluded-namespaces',
      type: 'string',
      value: 'NS,...',
      doc: "Namespaces whose pods the plugin never reads (default $POD_NAMESPACE, the agent's own, else envoy-injector).",
    },
    { name: 'resync-seconds', type: 'string', value: 'N', doc: 'How often the installation is checked and repaired, 1-3600 (default 10).' },
    { name: 'token-file', type: 'string', value: 'FILE', doc: `The ServiceAccount token put into the plugin's kubeconfig (default ${SA_DIR}/token).` },
    { name: 'ca-file', type: 'string', value: 'FILE', doc: `The API server's CA for the plugin's kubeconfig (default ${SA_DIR}/ca.crt).` },
    dir('app-dir', 'The app copied to the node: package.json, node_modules, dist (default: the one running).'),
  ],
};

/** Parses the agent's flags (each with a default fit for the DaemonSet). */
export function agentOptions(args: readonly string[], env: Readonly<Record<string, string | undefined>> = process.env): AgentOptions {
  const parsed = parseFlags(CNI_NODE_COMMAND, args).values;
  const values = Object.fromEntries(Object.entries(parsed).filter((e): e is [string, string] => typeof e[1] === 'string'));
  const host = env['KUBERNETES_SERVICE_HOST'];
  const port = env['KUBERNETES_SERVICE_PORT'] ?? '443';
  if (host === undefined) throw new Error('KUBERNETES_SERVICE_HOST is not set: cni-node runs in a pod');
  const resync = Number(values['resync-seconds'] ?? '10');
  if (!Number.isInteger(resync) || resync < 1 || resync > 3600) throw new Error('--resync-seconds must be 1-3600');
  return {
    cniBinDir: values['cni-bin-dir'] ?? '/host/opt/cni/bin',
    cniConfDir: values['cni-conf-dir'] ?? '/host/etc/cni/net.d',
    installDir: values['install-dir'] ?? '/host/opt/envoy-injector-cni',
    hostInstallDir: values['host-install-dir'] ?? '/opt/envoy-injector-cni',
    hostCniConfDir: values['host-cni-conf-dir'] ?? '/etc/cni/net.d',
    tokenFile: values['token-file'] ?? `${SA_DIR}/token`,
    caFile: values['ca-file'] ?? `${SA_DIR}/ca.crt`,
    apiServer: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    excludedNamespaces: (values['excluded-namespaces'] ?? env['POD_NAMESPACE'] ?? 'envoy-injector')
      .split(',')
      .map((n) => n.trim())
      .filter((n) => n !== ''),
    appDir: values['app-dir'] ?? new URL('../../', import.meta.url).pathname,
    nodeBinary: process.execPath,
    resyncMs: resync * 1000,
  };
}

/** Runs the agent until SIGTERM/SIGINT, then uninstalls; resolves to the exit code. */
export async function runAgent(options: AgentOptions, signal: AbortSignal): Promise<number> {
  const say = (line: string) => process.stdout.write(`${PREFIX}: ${line}\n`);
  const installed = { binaries: false };
  let lastError = '';
  const pass = () => {
    try {
      for (const change of reconcile(options, installed)) say(change);
      if (lastError !== '') say('installed again');
      lastError = '';
    } catch (error) {
      const message = (error as Error).message;
      // One line per new problem, not one per resync.
      if (message !== lastError) process.stderr.write(`${PREFIX}: ${message}\n`);
      lastError = message;
    }
  };
  pass();
  let watcher: FSWatcher | undefined;
  try {
    // A primary CNI rewriting its configuration drops our entry: put it back at once.
    watcher = watch(options.cniConfDir, () => pass());
  } catch {
    // no inotify: the resync below still notices
  }
  const timer = setInterval(pass, options.resyncMs);
  await new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
  clearInterval(timer);
  watcher?.close();
  try {
    for (const change of uninstall(options)) say(change);
    return 0;
  } catch (error) {
    process.stderr.write(`${PREFIX}: uninstall failed: ${(error as Error).message}\n`);
    return 1;
  }
}

/** `envoy-injector cni-node [flags]`. */
export async function run(args: string[], out: { write(text: string): unknown } = process.stdout): Promise<number> {
  let options: AgentOptions;
  try {
    if (parseFlags(CNI_NODE_COMMAND, args).help) {
      out.write(commandHelp(CNI_NODE_COMMAND));
      return 0;
    }
    options = agentOptions(args);
  } catch (error) {
    process.stderr.write(`${PREFIX}: ${(error as Error).message}\n`);
    return 2;
  }
  const controller = new AbortController();
  for (const name of ['SIGTERM', 'SIGINT'] as const) process.once(name, () => controller.abort());
  return runAgent(options, controller.signal);
}

// `envoy-injector cni`: the chained CNI plugin `envoy-injector-cni` (SPEC.md §4c). The runtime runs
// it after the plugin that created the pod's interface; on ADD for a pod injected in CNI mode it
// installs in CNI_NETNS exactly the capture envoy-init would: it reads the pod from the API server,
// parses its envoy-init flags with the code envoy-init runs, and runs `init-iptables` with them in
// the pod's network namespace (`nsenter --net=`, the node's iptables). Every other pod is left as it
// is and its previous result passed through: the plugin never breaks the networking of a pod it
// does not own. Errors are the CNI error JSON, with one line.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { INIT_CONTAINER_NAME, STATUS_ANNOTATION } from '../constants.ts';
import { renderInitFlags } from '../core/init-flags.ts';
import { readPod } from '../core/pod.ts';
import { initInputsOf } from '../core/pod-bootstrap.ts';
import { commandHelp, parseFlags, type CommandSpec } from '../cli/flags.ts';
import { getPod, readKubeconfig, type PodLookup } from './pod-source.ts';
import {
  CNI_ERRORS,
  CniError,
  errorResult,
  parseConfig,
  passThrough,
  readEnvironment,
  versionResult,
  type CniEnvironment,
  type PluginConfig,
} from './protocol.ts';

const PREFIX = 'envoy-injector-cni';
/** Longest the capture's own run may take in the pod's namespace (its xtables lock wait is 30 s). */
export const APPLY_TIMEOUT_MS = 45_000;
/** Largest network configuration read from standard input. */
const MAX_STDIN_BYTES = 1024 * 1024;

/** What the plugin decides about one pod: leave it alone (and why), or install its capture with these flags. */
export type PodCapture =
  | { readonly own: false; readonly why: string }
  | { readonly own: true; readonly flags: readonly string[] }
  | { readonly own: 'broken'; readonly why: string };

/**
 * Decides from a pod object whether the plugin installs its capture: only a pod carrying the status
 * annotation, not on the host network, whose envoy-init runs `init-iptables --capture-mode=cni`.
 * The flags are the pod's own envoy-init flags, parsed as envoy-init parses them and rendered again
 * without the bootstrap (envoy-init writes that) and with `--capture-mode=init` (here they install).
 */
export function podCapture(object: unknown): PodCapture {
  const read = readPod(object);
  if (!read.ok) return { own: false, why: `not a pod the plugin can read (${read.problem})` };
  const pod = read.pod;
  if (pod.annotations[STATUS_ANNOTATION] === undefined) return { own: false, why: 'not injected' };
  if (pod.spec['hostNetwork'] === true) return { own: false, why: 'on the host network' };
  const inputs = initInputsOf(pod);
  if (inputs === undefined) return { own: false, why: `no ${INIT_CONTAINER_NAME} container running init-iptables` };
  if (!inputs.ok) return { own: 'broken', why: inputs.error };
  const { proxy } = inputs.inputs;
  if (proxy.captureMode !== 'cni') return { own: false, why: `injected in capture mode ${proxy.captureMode} (envoy-init installs it)` };
  return { own: true, flags: renderInitFlags({ ...proxy, captureMode: 'init' }, null) };
}

/** How one run of the plugin ended: what goes to standard output, the exit code, and log lines. */
export interface PluginOutcome {
  readonly stdout: string;
  readonly code: number;
  readonly log: readonly string[];
}

/** Runs `init-iptables` with `args` in the network namespace `netns`; resolves to its exit and output. */
function runInNetns(netns: string, args: readonly string[]): Promise<{ code: number | null; output: string }> {
  const self = process.argv[1] ?? '';
  // The same program as this one, with the same loader flags (tsx in tests), entered into the pod's
  // network namespace only: its files, PATH and iptables stay the node's.
  const argv = [`--net=${netns}`, '--', process.execPath, ...process.execArgv, self, 'init-iptables', ...args];
  return new Promise((done) => {
    const child = spawn('nsenter', argv, { stdio: ['ignore', 'pipe', 'pipe'], timeout: APPLY_TIMEOUT_MS, killSignal: 'SIGKILL' });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (output += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (output += c));
    child.on('error', (error: NodeJS.ErrnoException) => done({ code: null, output: `nsenter could not be started: ${error.code ?? error.message}` }));
    child.on('close', (code, signal) => done({ code: signal === null ? code : null, output: signal === null ? output : `${output}killed by ${signal} after ${APPLY_TIMEOUT_MS} ms` }));
  });
}

/** The last line a failed run printed that says something (init-iptables prints its cause last). */
const lastLine = (text: string): string =>
  text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .pop() ?? 'no output';

/** Looks the pod up, from the runtime's annotations first where it passes them. */
async function lookUp(config: PluginConfig, env: CniEnvironment): Promise<{ capture: PodCapture } | { unreachable: string; injected: boolean }> {
  const pod = env.pod;
  if (pod === null) return { capture: { own: false, why: 'no K8S_POD_NAMESPACE/K8S_POD_NAME in CNI_ARGS' } };
  if (config.excludedNamespaces.includes(pod.namespace)) return { capture: { own: false, why: `namespace ${pod.namespace} is excluded` } };
  // containerd and CRI-O pass the annotations when asked: a pod without the status annotation is
  // not ours, and no API request is needed.
  const injected = config.podAnnotations === null ? null : config.podAnnotations[STATUS_ANNOTATION] !== undefined;
  if (injected === false) return { capture: { own: false, why: 'not injected (runtime annotations)' } };
  if (config.kubeconfig === null) return { unreachable: 'the plugin configuration names no kubeconfig', injected: injected === true };
  let lookup: PodLookup;
  try {
    lookup = await getPod(readKubeconfig(config.kubeconfig), pod.namespace, pod.name);
  } catch (error) {
    lookup = { error: (error as Error).message };
  }
  if ('error' in lookup) return { unreachable: lookup.error, injected: injected === true };
  if (!lookup.found) return { capture: { own: false, why: 'no such pod in the API server' } };
  return { capture: podCapture(lookup.pod) };
}

/** Runs the plugin for one invocation (pure of the process: environment and input in, outcome out). */
export async function runPlugin(env: Readonly<Record<string, string | undefined>>, stdin: string): Promise<PluginOutcome> {
  const log: string[] = [];
  let cniVersion = '1.0.0';
  try {
    const cni = readEnvironment(env);
    const config = parseConfig(stdin === '' && cni.command === 'VERSION' ? '{"cniVersion":"1.0.0"}' : stdin);
    cniVersion = config.cniVersion;
    const who = cni.pod === null ? `container ${cni.containerId}` : `pod ${cni.pod.namespace}/${cni.pod.name}`;
    switch (cni.command) {
      case 'VERSION':
        return { stdout: versionResult(cniVersion), code: 0, log };
      case 'DEL': {
        // The network namespace is going away; whatever this pod was, remove only our chains, and
        // never fail (a failing DEL would keep the pod from being deleted).
        if (cni.netns !== '' && existsSync(cni.netns)) {
          const run = await runInNetns(cni.netns, ['--remove']);
          log.push(`${who}: ${run.code === 0 ? lastLine(run.output) : `removing the capture failed (ignored): ${lastLine(run.output)}`}`);
        }
        return { stdout: '', code: 0, log };
      }
      case 'ADD':
      case 'CHECK': {
        if (config.prevResult === null && cni.command === 'ADD') {
          throw new CniError(CNI_ERRORS.invalidConfig, `${PREFIX} is a chained plugin: it must follow the plugin that creates the interface (no prevResult)`);
        }
        const found = await lookUp(config, cni);
        if ('unreachable' in found) {
          // A pod we cannot prove to be ours keeps its network; a pod the runtime says is injected
          // fails, and the kubelet retries its sandbox once the API server answers.
          if (found.injected) {
            throw new CniError(CNI_ERRORS.tryAgainLater, `${who} is injected but cannot be read from the API server (${found.unreachable}); retried by the kubelet`);
          }
          log.push(`${who}: left alone, the API server cannot be asked (${found.unreachable}); an injected pod then fails its envoy-init check`);
          return { stdout: cni.command === 'ADD' ? passThrough(config) : '', code: 0, log };
        }
        const { capture } = found;
        if (capture.own === 'broken') throw new CniError(CNI_ERRORS.captureFailed, `${who}: cannot install the capture: ${capture.why}`);
        if (!capture.own) {
          log.push(`${who}: left alone (${capture.why})`);
          return { stdout: cni.command === 'ADD' ? passThrough(config) : '', code: 0, log };
        }
        const run = await runInNetns(cni.netns, cni.command === 'ADD' ? capture.flags : ['--check', ...capture.flags]);
        if (run.code !== 0) {
          const what = cni.command === 'ADD' ? 'cannot install the capture' : 'the capture is not as installed';
          throw new CniError(CNI_ERRORS.captureFailed, `${who}: ${what}: ${lastLine(run.output).replace(/^envoy-injector init-iptables: /, '')}`, run.output);
        }
        log.push(`${who}: ${cni.command === 'ADD' ? 'capture installed' : 'capture checked'}`);
        return { stdout: cni.command === 'ADD' ? passThrough(config) : '', code: 0, log };
      }
    }
  } catch (error) {
    const cniError =
      error instanceof CniError ? error : new CniError(CNI_ERRORS.captureFailed, `unexpected error: ${(error as Error)?.message ?? String(error)}`);
    log.push(cniError.message);
    return { stdout: errorResult(cniVersion, cniError), code: 1, log };
  }
}

/** Reads standard input up to MAX_STDIN_BYTES. */
async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return '';
  let text = '';
  for await (const chunk of process.stdin) {
    text += String(chunk);
    if (text.length > MAX_STDIN_BYTES) throw new CniError(CNI_ERRORS.decoding, `the network configuration exceeds ${MAX_STDIN_BYTES} bytes`);
  }
  return text;
}

/** The command's help: the runtime passes no flags, its input is the CNI environment and standard input. */
export const CNI_COMMAND: CommandSpec = {
  name: 'cni',
  summary: 'The chained CNI plugin envoy-injector-cni of CNI mode (run by the container runtime).',
  synopsis: 'cni',
  description: `The chained CNI plugin (CNI spec 0.3.0 to 1.0.0: ADD, DEL, CHECK, VERSION), installed on each
node as envoy-injector-cni by the node agent and run by the container runtime with CNI_COMMAND,
CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_PATH and CNI_ARGS (K8S_POD_NAMESPACE, K8S_POD_NAME) and
the network configuration on standard input. On ADD for a pod injected in CNI mode it installs the
pod's capture in CNI_NETNS; every other pod's previous result is passed through unchanged. Exits 0,
or 1 with the CNI error result (code and msg) on standard output.`,
  flags: [],
};

/** `envoy-injector cni`: runs the plugin with the process's environment and standard input. */
export async function run(args: string[], out: { write(text: string): unknown } = process.stdout): Promise<number> {
  if (args.length > 0) {
    // Not the runtime (it passes no arguments): a person asking for the help, or a mistake.
    if (parseFlags(CNI_COMMAND, args).help) {
      out.write(commandHelp(CNI_COMMAND));
      return 0;
    }
  }
  let stdin = '';
  try {
    stdin = await readStdin();
  } catch (error) {
    const cniError = error instanceof CniError ? error : new CniError(CNI_ERRORS.decoding, (error as Error).message);
    process.stdout.write(errorResult('1.0.0', cniError));
    return 1;
  }
  const outcome = await runPlugin(process.env, stdin);
  for (const line of outcome.log) process.stderr.write(`${PREFIX}: ${line}\n`);
  process.stdout.write(outcome.stdout);
  return outcome.code;
}

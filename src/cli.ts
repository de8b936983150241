// The envoy-injector command line (SPEC.md §9), with kubectl's conventions: every command declares
// its flags (cli/flags.ts) and refuses any other, `COMMAND --help` shows them, `-f` is repeatable
// and takes files, directories (`-R`) and `-`, JSON in gives JSON out and YAML in block YAML out
// (cli/manifests.ts), and every command follows one table of exit codes (EXIT_CODES). Errors are
// one line on standard error.
//
// Command modules are imported when their command runs, not up front: `init-iptables` runs in
// every pod's start path and must not pay for loading the Kubernetes client, fastify or yaml.
import { readFileSync } from 'node:fs';
import { commandHelp, parseFlags, type CommandSpec, type FlagSpec, type FlagValues } from './cli/flags.ts';
import { closest } from './core/suggest.ts';
import { ConfigError, InjectorError, UsageError } from './errors.ts';
import { VERSION } from './version.ts';

/** The exit codes every command follows (init-iptables adds its own above 2, see its --help and the README). */
export const EXIT_CODES = [
  { code: 0, meaning: 'Success: done, and nothing was denied or failed.' },
  {
    code: 1,
    meaning:
      'A negative outcome: inject: a workload is denied; explain: a workload would be denied; bootstrap: the pod would not be injected; uninject: a pod cannot be uninjected; check: a check failed; cni: the plugin refused the pod (its CNI error result on standard output); cni-node: the uninstall failed. Also a cluster that cannot be reached, or an unexpected error.',
  },
  { code: 2, meaning: 'Usage: an unknown command or flag, a flag the command does not take, a bad flag value, an input that cannot be read or parsed, or an invalid config.' },
] as const;

const flag = (spec: FlagSpec): FlagSpec => spec;
const CONFIG = flag({ name: 'config', short: 'c', type: 'string', value: 'FILE', doc: 'Config file (YAML), the same as the server reads; default $ENVOY_INJECTOR_CONFIG.' });
const FILE = flag({
  name: 'file',
  short: 'f',
  type: 'string',
  value: 'FILE|DIR|-',
  multiple: true,
  doc: 'A manifest file, a directory (its .json, .yaml and .yml files) or - for standard input; repeat it for several.',
});
const RECURSIVE = flag({ name: 'recursive', short: 'R', type: 'boolean', doc: 'Read the directories given with -f recursively.' });
const NAMESPACE = flag({ name: 'namespace', short: 'n', type: 'string', value: 'NS', doc: 'Namespace of the documents that name none (default "default").' });
const NAMESPACE_ANNOTATION = flag({
  name: 'namespace-annotation',
  type: 'string',
  value: 'KEY=VALUE',
  multiple: true,
  doc: "An annotation of the documents' namespace, e.g. envoy-injector.io/log-level=debug: the default of its pods' setting; repeat it for several.",
});
const CLUSTER = flag({
  name: 'cluster',
  type: 'boolean',
  doc: "Ask the kubeconfig's cluster whether it runs native sidecars, as the webhook does with nativeSidecar: auto (without it no cluster is asked).",
});
const NATIVE_SIDECAR = flag({
  name: 'native-sidecar',
  type: 'string',
  value: 'true|false',
  choices: ['true', 'false'],
  doc: "Offline: inject native sidecars (true) or classic ones (false). Default: the config's nativeSidecar when true or false, else false.",
});
const KUBECONFIG = flag({ name: 'kubeconfig', type: 'string', value: 'FILE', doc: 'With --cluster: the kubeconfig (default $KUBECONFIG, then ~/.kube/config).' });
const CONTEXT = flag({ name: 'context', type: 'string', value: 'NAME', doc: 'With --cluster: the kubeconfig context (default the current one).' });
const OFFLINE = [CLUSTER, NATIVE_SIDECAR, KUBECONFIG, CONTEXT];
const manifestOutput = (what: string) =>
  flag({ name: 'output', short: 'o', type: 'string', value: 'json|yaml', choices: ['json', 'yaml'], doc: `Print ${what} as JSON or YAML (default: JSON when every input is JSON, else YAML).` });

/** The commands of this module; `init-iptables`, `certs` and `check` parse their own flags. */
export const COMMANDS: readonly CommandSpec[] = [
  {
    name: 'serve',
    summary: 'Run the admission webhook (the image runs this; so does npm start).',
    synopsis: 'serve [flags]',
    description: 'Serves the webhook over HTTPS (server.host:server.port, default https://127.0.0.1:8443) with the certificates of tls.mode.',
    flags: [CONFIG],
  },
  {
    name: 'inject',
    summary: 'Inject the Pods and pod templates of manifests; print them.',
    synopsis: 'inject -f FILE|DIR|- [flags]',
    description: `Injects every Pod and pod template (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job,
CronJob, and Lists of them) with exactly the patch the webhook would return, and prints the whole
stream: every other document as it was read, comments included. Each pod that is not injected is
reported on standard error with its reason code. Offline: native sidecars only with
--native-sidecar=true (or the config's nativeSidecar: true), or as the cluster says with --cluster.
Exits 1 when a workload is denied.`,
    flags: [CONFIG, FILE, RECURSIVE, NAMESPACE, manifestOutput('the manifests'), NAMESPACE_ANNOTATION, ...OFFLINE],
  },
  {
    name: 'uninject',
    summary: 'Remove what injection added to manifests; print them.',
    synopsis: 'uninject -f FILE|DIR|- [flags]',
    description: `Removes from every injected Pod and pod template exactly what injection added, as its
envoy-injector.io/status annotation lists it (containers, volumes, annotations), and prints the
stream with every other byte as it was. "uninject -f x.yaml | inject -f -" re-injects a manifest
with the current config. A pod whose status annotation cannot be read, or does not match the pod,
is left as it is and reported; the command then exits 1.`,
    flags: [FILE, RECURSIVE, manifestOutput('the manifests')],
  },
  {
    name: 'explain',
    summary: 'Show, for each workload, whether it is injected and why.',
    synopsis: 'explain -f FILE|DIR|- [flags]',
    description: `Runs the webhook's decision on every Pod and pod template and prints, for each, the verdict
(INJECT, SKIP, DENY), every reason, the warnings kubectl would print, the overrides that take
effect and what would be added. Exits 1 when a workload would be denied.`,
    flags: [
      CONFIG,
      FILE,
      RECURSIVE,
      NAMESPACE,
      flag({
        name: 'namespace-labels',
        type: 'string',
        value: 'k=v,...',
        doc: 'The labels of the documents\' namespace (default: assumed labelled envoy-injector.io/inject=enabled).',
      }),
      NAMESPACE_ANNOTATION,
      flag({ name: 'show-settings', type: 'boolean', doc: "Also list every setting of the proxy with its value and where it came from (pod, namespace, config, default)." }),
      flag({ name: 'output', short: 'o', type: 'string', value: 'text|json', choices: ['text', 'json'], doc: 'text (default), or json: one document of a stable shape.' }),
      ...OFFLINE,
    ],
  },
  {
    name: 'bootstrap',
    summary: 'Print the Envoy bootstrap a pod runs with.',
    synopsis: 'bootstrap -f FILE|DIR|- [flags]',
    description: `Prints the bootstrap the first Pod or pod template of the input runs with: the one an injected
pod carries, or the one injecting it would give; a pod naming a bootstrap override ConfigMap needs
its envoy.yaml with --override FILE, and the bootstrap is printed merged with it as envoy-init writes
it. Exits 1 when that pod would not be injected or the merged bootstrap is not valid for Envoy.`,
    flags: [
      CONFIG,
      FILE,
      RECURSIVE,
      NAMESPACE,
      flag({ name: 'output', short: 'o', type: 'string', value: 'json|yaml', choices: ['json', 'yaml'], doc: 'json (default) or yaml.' }),
      flag({
        name: 'override',
        type: 'string',
        value: 'FILE',
        doc: "The envoy.yaml of the bootstrap override ConfigMap the pod names: the bootstrap is printed merged with it, checked strictly against Envoy's v3 protos.",
      }),
      ...OFFLINE,
    ],
  },
  { name: 'version', summary: 'Print the version.', synopsis: 'version', description: 'Prints the version of envoy-injector.', flags: [] },
  {
    name: 'help',
    summary: 'Show the help, or a command\'s (envoy-injector help inject).',
    synopsis: 'help [COMMAND]',
    description: 'Shows the list of commands, or the flags of one.',
    flags: [],
  },
];

/** Commands implemented in their own modules (with their own --help), loaded only when used. */
const EXTERNAL_COMMANDS: Record<string, { summary: string; load: () => Promise<{ run: (args: string[], out: CliOutput['stdout']) => Promise<number> }> }> = {
  check: { summary: 'Check an installation through the kubeconfig.', load: () => import('./cli/check.ts') },
  certs: { summary: 'Write a CA and serving certificate.', load: () => import('./cli/certs.ts') },
  'init-iptables': { summary: "Install a pod's traffic capture (what the envoy-init container runs).", load: () => import('./iptables/cli.ts') },
  cni: { summary: 'The chained CNI plugin envoy-injector-cni of CNI mode (run by the container runtime).', load: () => import('./cni/plugin.ts') },
  'cni-node': { summary: "CNI mode's node agent (DaemonSet envoy-injector-node): installs the plugin.", load: () => import('./cni/agent.ts') },
};

const ORDER = ['serve', 'inject', 'uninject', 'explain', 'bootstrap', 'check', 'certs', 'init-iptables', 'cni', 'cni-node', 'version', 'help'];
const commandNames = () => ORDER;

/** Returns the help of the command line: its commands, and the exit codes. */
export function globalHelp(): string {
  const summary = (name: string) => COMMANDS.find((c) => c.name === name)?.summary ?? EXTERNAL_COMMANDS[name]?.summary ?? '';
  const exit = EXIT_CODES.map((e) => `  ${e.code}  ${e.meaning}`).join('\n');
  return `envoy-injector ${VERSION}: injects an Envoy sidecar and traffic capture into Kubernetes pods.

Usage: envoy-injector COMMAND [flags]

Commands:
${ORDER.map((name) => `  ${name.padEnd(15)}${summary(name)}`).join('\n')}

Run "envoy-injector COMMAND --help" for the flags of a command.

Exit codes:
${exit}
`;
}

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of text.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--namespace-labels: expected key=value pairs, got ${JSON.stringify(pair)}`);
    labels[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return labels;
}

/** Parses repeated `KEY=VALUE` annotations; a value may hold commas and `=` (port lists, CIDRs). */
function parseAnnotations(pairs: readonly string[] | undefined): Record<string, string> | undefined {
  if (pairs === undefined) return undefined;
  const annotations: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--namespace-annotation: expected KEY=VALUE, got ${JSON.stringify(pair)}`);
    annotations[pair.slice(0, eq).trim()] = pair.slice(eq + 1);
  }
  return annotations;
}

/** Where a command writes, and what it reads as standard input; tests pass their own. */
export interface CliOutput {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
  readonly readStdin?: () => string;
}

const STANDARD_OUTPUT: CliOutput = { stdout: process.stdout, stderr: process.stderr };

const str = (values: FlagValues, name: string): string | undefined => {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
};
const list = (values: FlagValues, name: string): readonly string[] | undefined => {
  const value = values[name];
  return Array.isArray(value) ? (value as readonly string[]) : undefined;
};

/** Runs the CLI with `argv` (without node and script); resolves to the exit code. */
export async function main(argv: string[], io: CliOutput = STANDARD_OUTPUT): Promise<number> {
  const [name, ...rest] = argv;
  // A bare envoy-injector prints the help, as kubectl does (exit 0): the server is `serve`.
  if (name === undefined || name === '-h' || name === '--help') {
    io.stdout.write(globalHelp());
    return 0;
  }
  if (name === '--version') {
    io.stdout.write(`${VERSION}\n`);
    return 0;
  }
  if (name.startsWith('-')) {
    throw new UsageError(`expected a command before ${name} (the webhook is "envoy-injector serve"); see envoy-injector --help`);
  }
  if (name === 'help' && rest.length > 0) return main([rest[0] as string, '--help', ...rest.slice(1)], io);
  const external = EXTERNAL_COMMANDS[name];
  if (external !== undefined) return (await external.load()).run(rest, io.stdout);
  const command = COMMANDS.find((c) => c.name === name);
  if (command === undefined) {
    const suggestion = closest(name, commandNames());
    throw new UsageError(`unknown command ${JSON.stringify(name)}${suggestion === undefined ? '' : ` (did you mean ${suggestion}?)`}; see envoy-injector --help`);
  }
  const { values, help } = parseFlags(command, rest, COMMANDS);
  if (help) {
    io.stdout.write(commandHelp(command));
    return 0;
  }
  return runCommand(command, values, io);
}

/** Reads the --override file; a file that cannot be read is a usage error. */
function readOverride(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageError(`--override ${path}: cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
}

async function runCommand(command: CommandSpec, values: FlagValues, io: CliOutput): Promise<number> {
  if (command.name === 'version') {
    io.stdout.write(`${VERSION}\n`);
    return 0;
  }
  if (command.name === 'help') {
    io.stdout.write(globalHelp());
    return 0;
  }
  if (command.name === 'serve') {
    // Only the config: the server loads neither the manifest readers nor the YAML parser.
    const { loadConfig } = await import('./config.ts');
    const { serve } = await import('./serve.ts');
    const served = loadConfig({ file: str(values, 'config') });
    if (served.proxy.bootstrapOverride !== null) (await import('./envoy/fragment-check.ts')).checkClusterFragment(served);
    await serve(served);
    return 0;
  }
  const files = list(values, 'file');
  if (command.flags.some((f) => f.name === 'file') && files === undefined) {
    throw new UsageError(`${command.name} needs -f FILE, a directory or - (standard input); see envoy-injector ${command.name} --help`);
  }
  const { readSources } = await import('./cli/input.ts');
  const { parseSource } = await import('./cli/manifests.ts');
  const inputs = files === undefined ? [] : readSources(files, values['recursive'] === true, io.readStdin);
  const readInputs = () => inputs.map(parseSource);

  if (command.name === 'uninject') {
    const { uninjectSources, formatUninjectReports } = await import('./cli/uninject.ts');
    const { outputFormatOf, printSources } = await import('./cli/manifests.ts');
    const sources = readInputs();
    const reports = uninjectSources(sources);
    io.stdout.write(printSources(sources, outputFormatOf(sources, str(values, 'output') as 'json' | 'yaml' | undefined)));
    for (const line of formatUninjectReports(reports)) io.stderr.write(`${line}\n`);
    return reports.some((r) => r.outcome === 'refused') ? 1 : 0;
  }

  const { loadConfig } = await import('./config.ts');
  const loaded = loadConfig({ file: str(values, 'config') });
  // The cluster-wide bootstrap fragment, strictly against Envoy's protos: loaded only when it is set.
  if (loaded.proxy.bootstrapOverride !== null) (await import('./envoy/fragment-check.ts')).checkClusterFragment(loaded);

  const cluster = values['cluster'] === true;
  const nativeSidecar = str(values, 'native-sidecar') as 'true' | 'false' | undefined;
  if (cluster && nativeSidecar !== undefined) throw new UsageError('--native-sidecar and --cluster exclude each other: --cluster asks the cluster what --native-sidecar would assume');
  for (const name of ['kubeconfig', 'context']) {
    if (!cluster && str(values, name) !== undefined) throw new UsageError(`--${name} is only read with --cluster`);
  }
  const namespaceAnnotations = parseAnnotations(list(values, 'namespace-annotation'));
  const labels = str(values, 'namespace-labels');
  const namespaceLabels = labels === undefined ? undefined : parseLabels(labels);
  const sources = readInputs();
  const { resolveOffline } = await import('./runtime.ts');
  const { config, runtime, nativeSidecarDetail } = await resolveOffline(loaded, {
    cluster,
    nativeSidecar,
    kubeConfig: { kubeconfig: str(values, 'kubeconfig'), context: str(values, 'context') },
  });
  const namespace = str(values, 'namespace') ?? 'default';

  switch (command.name) {
    case 'inject': {
      const { formatInjectReports, injectSources } = await import('./cli/inject.ts');
      const { outputFormatOf, printSources } = await import('./cli/manifests.ts');
      // With --cluster the output depends on the cluster the kubeconfig points at: say which way it went.
      if (cluster) io.stderr.write(`note: ${nativeSidecarDetail}\n`);
      const reports = injectSources(sources, config, runtime, namespace, namespaceAnnotations);
      io.stdout.write(printSources(sources, outputFormatOf(sources, str(values, 'output') as 'json' | 'yaml' | undefined)));
      for (const line of formatInjectReports(reports)) io.stderr.write(`${line}\n`);
      return reports.some((r) => r.result.decision.action === 'deny') ? 1 : 0;
    }
    case 'explain': {
      const { explainSources, explainReport, formatExplanations } = await import('./cli/explain.ts');
      const options = {
        defaultNamespace: namespace,
        nativeSidecarDetail,
        ...(namespaceLabels === undefined ? {} : { namespaceLabels }),
        ...(namespaceAnnotations === undefined ? {} : { namespaceAnnotations }),
        ...(values['show-settings'] === true ? { showSettings: true } : {}),
      };
      const explanations = explainSources(sources, config, runtime, options);
      io.stdout.write(
        str(values, 'output') === 'json'
          ? `${JSON.stringify(explainReport(explanations, runtime, options), null, 2)}\n`
          : formatExplanations(explanations, options),
      );
      return explanations.some((e) => e.action === 'deny') ? 1 : 0;
    }
    case 'bootstrap': {
      const { bootstrapFor, bootstrapNotes } = await import('./cli/bootstrap.ts');
      const { manifestTargets } = await import('./cli/manifests.ts');
      const { stringifyQuoted } = await import('./cli/documents.ts');
      // The first source holding a pod (bootstrapFor reads its first pod).
      const index = sources.findIndex((s) => s.manifests.some((m) => manifestTargets(m).length > 0));
      const chosen = inputs[Math.max(index, 0)];
      if (chosen === undefined) throw new UsageError('bootstrap: no input');
      const overridePath = str(values, 'override');
      const override = overridePath === undefined ? undefined : { path: overridePath, text: readOverride(overridePath) };
      const result = bootstrapFor(chosen.text, chosen.name === '-' ? 'standard input' : chosen.name, config, runtime, namespace, override);
      io.stdout.write(
        str(values, 'output') === 'yaml' ? stringifyQuoted(result.bootstrap) : `${JSON.stringify(result.bootstrap, null, 2)}\n`,
      );
      for (const note of bootstrapNotes(result)) io.stderr.write(`note: ${note}\n`);
      return 0;
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command.name)}; see envoy-injector --help`);
  }
}

/** Turns any error into one line on standard error and an exit code (EXIT_CODES). */
export function reportError(error: unknown, io: CliOutput = STANDARD_OUTPUT): number {
  if (error instanceof InjectorError) {
    io.stderr.write(`envoy-injector: ${error.message}\n`);
    return error instanceof UsageError || error instanceof ConfigError ? 2 : 1;
  }
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) {
    io.stderr.write(`envoy-injector: ${(error as Error).message}; see envoy-injector --help\n`);
    return 2;
  }
  io.stderr.write(`envoy-injector: unexpected error: ${(error as Error)?.message ?? String(error)}\n`);
  return 1;
}

// The envoy-injector command line (SPEC.md §9). Every command reads the same config as the server
// and reports errors as one line on standard error.
//
// Command modules are imported when their command runs, not up front: `init-iptables` runs in
// every pod's start path and must not pay for loading the Kubernetes client, fastify or yaml.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { InjectorError, UsageError } from './errors.ts';
import { VERSION } from './version.ts';

const USAGE = `envoy-injector ${VERSION}: injects an Envoy sidecar and traffic capture into Kubernetes pods.

Usage: envoy-injector [command] [options]

Commands:
  serve                          Run the admission webhook (default).
  inject -f FILE|-               Inject Pods and pod templates of a YAML stream; print the result.
      [--namespace-annotation KEY=VALUE ...]
  explain -f FILE|-              Show, for each workload, whether it is injected and why.
      [--namespace-labels k=v,...] [--namespace-annotation KEY=VALUE ...]
      [--show-settings] [--output text|json]
  bootstrap -f FILE|-            Print the Envoy bootstrap the (first) pod runs with.
      [--output json|yaml]
  init-iptables [flags]          Install the pod's traffic capture (the envoy-init container).
  cni                            The chained CNI plugin envoy-injector-cni (CNI mode; run by the
                                 container runtime, installed on each node by the node agent).
  cni-node                       The node agent (DaemonSet envoy-injector-node): installs the CNI
                                 plugin and keeps it in the node's CNI configuration.
  certs                          Write a CA and serving certificate.
  check                          Check an installation through the kubeconfig.
  version                        Print the version.

Options (a command refuses one it does not read):
  -c, --config FILE              Config file (YAML); default $ENVOY_INJECTOR_CONFIG (every command
                                 but version).
  -n, --namespace NS             inject, explain, bootstrap: namespace of documents that name none
                                 (default "default").
  -h, --help                     Show this help.

Options of inject and explain:
  --namespace-annotation KEY=VALUE
                                 An annotation of the documents' namespace, e.g.
                                 envoy-injector.io/log-level=debug: the default of its pods'
                                 setting (repeat it for several).
  --show-settings                explain: also list every setting of the proxy with its value and
                                 where it came from (pod, namespace, config, default).
`;

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  file: { type: 'string', short: 'f' },
  namespace: { type: 'string', short: 'n' },
  'namespace-labels': { type: 'string' },
  'namespace-annotation': { type: 'string', multiple: true },
  'show-settings': { type: 'boolean' },
  output: { type: 'string', short: 'o' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

type OptionName = keyof typeof OPTIONS;

/** The options each command reads; any other is refused rather than silently ignored. */
const COMMAND_OPTIONS: Readonly<Record<string, readonly OptionName[]>> = {
  serve: ['config'],
  version: [],
  inject: ['config', 'file', 'namespace', 'namespace-annotation'],
  explain: ['config', 'file', 'namespace', 'namespace-labels', 'namespace-annotation', 'show-settings', 'output'],
  bootstrap: ['config', 'file', 'namespace', 'output'],
};

/** Commands implemented in their own modules, loaded only when used. */
const EXTERNAL_COMMANDS: Record<string, () => Promise<{ run: (args: string[]) => Promise<number> }>> = {
  'init-iptables': () => import('./iptables/cli.ts'),
  cni: () => import('./cni/plugin.ts'),
  'cni-node': () => import('./cni/agent.ts'),
  certs: () => import('./cli/certs.ts'),
  check: () => import('./cli/check.ts'),
};

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

function requireFile(file: string | undefined, command: string): string {
  if (file === undefined) throw new UsageError(`${command} needs -f FILE (or -f - for standard input)`);
  return file;
}

function outputFormat(value: string | undefined, allowed: readonly string[]): string {
  const format = value ?? allowed[0] ?? '';
  if (!allowed.includes(format)) throw new UsageError(`--output must be one of ${allowed.join(', ')}`);
  return format;
}

/** Where a command writes; tests pass their own. */
export interface CliOutput {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
}

const STANDARD_OUTPUT: CliOutput = { stdout: process.stdout, stderr: process.stderr };

/** Runs the CLI with `argv` (without node and script); resolves to the exit code. */
export async function main(argv: string[], io: CliOutput = STANDARD_OUTPUT): Promise<number> {
  const [first] = argv;
  const command = first === undefined || first.startsWith('-') ? 'serve' : first;
  const rest = first === undefined || first.startsWith('-') ? argv : argv.slice(1);

  const external = EXTERNAL_COMMANDS[command];
  if (external !== undefined) return (await external()).run(rest);

  const { values } = parseArgs({ args: rest, options: OPTIONS, allowPositionals: false, strict: true });
  if (values.help) {
    io.stdout.write(USAGE);
    return 0;
  }
  const allowed = COMMAND_OPTIONS[command];
  if (allowed === undefined) throw new UsageError(`unknown command ${JSON.stringify(command)}; see envoy-injector --help`);
  for (const [name, value] of Object.entries(values)) {
    if (value !== undefined && name !== 'help' && !allowed.includes(name as OptionName)) {
      throw new UsageError(`--${name} is not an option of ${command}; see envoy-injector --help`);
    }
  }
  const namespaceAnnotations = parseAnnotations(values['namespace-annotation']);
  if (command === 'version') {
    io.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const { loadConfig } = await import('./config.ts');
  const loadedConfig = loadConfig({ file: values.config });
  const namespace = values.namespace ?? 'default';
  const { resolveRuntime } = await import('./runtime.ts');
  // Only the commands that read documents load them (and the YAML parser): not `serve`.
  const readInput = async (file: string) => (await import('./cli/documents.ts')).readInput(file);

  switch (command) {
    case 'serve': {
      const { serve } = await import('./serve.ts');
      await serve(loadedConfig);
      return 0;
    }
    case 'inject': {
      const file = requireFile(values.file, 'inject');
      const { formatInjectReports, injectDocuments } = await import('./cli/inject.ts');
      const { runtime, nativeSidecarDetail } = await resolveRuntime(loadedConfig);
      // With `auto` the output depends on the cluster the kubeconfig points at: say which way it went.
      if (loadedConfig.nativeSidecar === 'auto') io.stderr.write(`note: ${nativeSidecarDetail}\n`);
      const { output, reports } = injectDocuments(await readInput(file), file, loadedConfig, runtime, namespace, namespaceAnnotations);
      io.stdout.write(output);
      for (const line of formatInjectReports(reports)) io.stderr.write(`${line}\n`);
      return reports.some((r) => r.result.decision.action === 'deny') ? 1 : 0;
    }
    case 'explain': {
      const file = requireFile(values.file, 'explain');
      const format = outputFormat(values.output, ['text', 'json']);
      const { explainDocuments, explainReport, formatExplanations } = await import('./cli/explain.ts');
      const { runtime, nativeSidecarDetail } = await resolveRuntime(loadedConfig);
      const labels = values['namespace-labels'];
      const options = {
        defaultNamespace: namespace,
        nativeSidecarDetail,
        ...(labels === undefined ? {} : { namespaceLabels: parseLabels(labels) }),
        ...(namespaceAnnotations === undefined ? {} : { namespaceAnnotations }),
        ...(values['show-settings'] === true ? { showSettings: true } : {}),
      };
      const explanations = explainDocuments(await readInput(file), file, loadedConfig, runtime, options);
      io.stdout.write(
        format === 'json'
          ? `${JSON.stringify(explainReport(explanations, runtime, options), null, 2)}\n`
          : formatExplanations(explanations, options),
      );
      return 0;
    }
    case 'bootstrap': {
      const file = requireFile(values.file, 'bootstrap');
      const format = outputFormat(values.output, ['json', 'yaml']);
      const { bootstrapFor, bootstrapNotes } = await import('./cli/bootstrap.ts');
      const { stringifyQuoted } = await import('./cli/documents.ts');
      const { runtime } = await resolveRuntime(loadedConfig);
      const result = bootstrapFor(await readInput(file), file, loadedConfig, runtime, namespace);
      io.stdout.write(
        format === 'json' ? `${JSON.stringify(result.bootstrap, null, 2)}\n` : stringifyQuoted(result.bootstrap),
      );
      for (const note of bootstrapNotes(result)) io.stderr.write(`note: ${note}\n`);
      return 0;
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}; see envoy-injector --help`);
  }
}

/** Turns any error into one line on standard error and an exit code (2 for usage errors). */
export function reportError(error: unknown, io: CliOutput = STANDARD_OUTPUT): number {
  if (error instanceof InjectorError) {
    io.stderr.write(`envoy-injector: ${error.message}\n`);
    return error instanceof UsageError ? 2 : 1;
  }
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) {
    io.stderr.write(`envoy-injector: ${(error as Error).message}; see envoy-injector --help\n`);
    return 2;
  }
  io.stderr.write(`envoy-injector: unexpected error: ${(error as Error)?.message ?? String(error)}\n`);
  return 1;
}

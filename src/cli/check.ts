// `envoy-injector check` (SPEC.md §9): checks an installation through the admin's kubeconfig and
// prints one line per finding; exits 1 when anything is failing.
import { loadConfig } from '../config.ts';
import type { InjectorRuntime } from '../core/types.ts';
import { chooseKubeConfig } from '../kube/client.ts';
import { assessInstallation, type NativeSidecarCheck, type OverrideCheck } from '../check/assess.ts';
import { OVERRIDE_KEY } from '../constants.ts';
import type { Finding } from '../check/findings.ts';
import { fetchInstallation, type FetchedConfigMap } from '../kube/installation.ts';
import { createKubeResources } from '../kube/resources.ts';
import { detectNativeSidecarSupport, readKubeletSurvey } from '../kube/version.ts';
import { runtimeFor } from '../runtime.ts';
import { VERSION } from '../version.ts';
import { commandHelp, parseFlags, type CommandSpec } from './flags.ts';

/** The command's flags and help. */
export const CHECK_COMMAND: CommandSpec = {
  name: 'check',
  summary: 'Check an installation through the kubeconfig.',
  synopsis: 'check [flags]',
  description: `Checks an installation through your kubeconfig: the MutatingWebhookConfiguration and its caBundle
against the certificate the replicas serve (read from their Secret), the Service's ready endpoints,
the nodes' kubelets when native sidecars may be injected, the namespaces labelled for injection (and
whether their Pod Security level refuses injected pods), and pods there that run without the proxy
or with a stale one (naming what differs).
Run it with the config file the injector runs with (manifests/config.yaml). Exits 1 on a failure.`,
  flags: [
    { name: 'config', short: 'c', type: 'string', value: 'FILE', doc: 'Config file (default $ENVOY_INJECTOR_CONFIG).' },
    { name: 'namespace', short: 'n', type: 'string', value: 'NS', doc: "Namespace the injector runs in (default: the config's namespace)." },
    {
      name: 'secret',
      type: 'string',
      value: 'NAME',
      doc: 'Secret holding the served certificate (default tls.secretName; for tls.mode files, the Secret you mount).',
    },
    { name: 'kubeconfig', type: 'string', value: 'FILE', doc: 'Kubeconfig to use (default $KUBECONFIG, then ~/.kube/config).' },
    { name: 'context', type: 'string', value: 'NAME', doc: 'Kubeconfig context to use (default: the current one).' },
    {
      name: 'output',
      short: 'o',
      type: 'string',
      value: 'text|json',
      choices: ['text', 'json'],
      doc: 'text (default), or json: an array of {code, level, check, message, differences?}.',
    },
  ],
};

const LABEL: Record<Finding['level'], string> = { ok: 'OK  ', info: 'INFO', warn: 'WARN', fail: 'FAIL' };

/** Returns the findings as the text `check` prints, ending with a summary line. */
export function formatFindings(findings: readonly Finding[], header: string): string {
  const lines = [header, ...findings.map((f) => `${LABEL[f.level]}  ${f.message}`)];
  const failures = findings.filter((f) => f.level === 'fail').length;
  const warnings = findings.filter((f) => f.level === 'warn').length;
  lines.push(
    failures + warnings === 0
      ? 'no problems found'
      : `${failures} failure${failures === 1 ? '' : 's'}, ${warnings} warning${warnings === 1 ? '' : 's'}`,
  );
  return `${lines.join('\n')}\n`;
}

/**
 * Checks each bootstrap override ConfigMap as envoy-init and `bootstrap --override` would: its key
 * envoy.yaml present, YAML, no clash with the injector's bootstrap, strictly valid for Envoy (the
 * protos are loaded only when some pod names one).
 */
export async function checkOverrides(fetched: readonly FetchedConfigMap[]): Promise<OverrideCheck[]> {
  const { fragmentProblems, mergeProblems } = await import('../envoy/fragment-check.ts');
  const { parseFragmentText } = await import('../core/fragment-text.ts');
  const { BootstrapOverrideError } = await import('../core/bootstrap-override.ts');
  return fetched.map((f) => {
    const key = `${f.namespace}/${f.name}`;
    const base = { key, pods: f.pods };
    if (f.unreadable !== undefined) return { ...base, state: 'unreadable', detail: f.unreadable };
    if (f.configMap === undefined) return { ...base, state: 'missing', detail: 'not found' };
    const data = f.configMap['data'];
    const text = typeof data === 'object' && data !== null && !Array.isArray(data) ? (data as Record<string, unknown>)[OVERRIDE_KEY] : undefined;
    if (typeof text !== 'string') return { ...base, state: 'missing', detail: `no key ${OVERRIDE_KEY}` };
    const source = `ConfigMap ${key} (key ${OVERRIDE_KEY})`;
    let problems: string[];
    try {
      const value = parseFragmentText(text, source);
      problems = fragmentProblems(value, source);
      if (problems.length === 0) problems = mergeProblems(value, source);
    } catch (error) {
      if (!(error instanceof BootstrapOverrideError)) throw error;
      problems = [...error.problems];
    }
    return problems.length === 0 ? { ...base, state: 'valid' } : { ...base, state: 'invalid', detail: problems.join('; ') };
  });
}

/** Runs the command, writing its report to `out`; resolves to the exit code. */
export async function run(args: string[], out: { write(text: string): unknown } = process.stdout): Promise<number> {
  const parsed = parseFlags(CHECK_COMMAND, args);
  if (parsed.help) {
    out.write(commandHelp(CHECK_COMMAND));
    return 0;
  }
  const text = (name: string): string | undefined => {
    const value = parsed.values[name];
    return typeof value === 'string' ? value : undefined;
  };
  const values = { config: text('config'), namespace: text('namespace'), secret: text('secret'), kubeconfig: text('kubeconfig'), context: text('context') };
  const output = text('output') ?? 'text';
  const loaded = loadConfig({ file: values.config });
  const config = values.namespace === undefined ? loaded : { ...loaded, namespace: values.namespace };

  const kc = chooseKubeConfig({ kubeconfig: values.kubeconfig, context: values.context });

  // The proxy config hash depends on native sidecars, which `auto` resolves from the cluster (the
  // API server's version and the nodes' kubelets), as a replica starting now would.
  const resources = createKubeResources(kc);
  let nativeSidecar: NativeSidecarCheck | undefined;
  let runtime: InjectorRuntime = { version: VERSION, nativeSidecarSupported: config.nativeSidecar === 'true' };
  if (config.nativeSidecar === 'auto') {
    const support = await detectNativeSidecarSupport(kc);
    runtime = runtimeFor(support);
    nativeSidecar = {
      setting: 'auto',
      detail: support.detail,
      ...(support.kubelets === undefined ? {} : { kubelets: support.kubelets }),
      ...(support.warning === undefined ? {} : { problem: support.warning }),
    };
  } else if (config.nativeSidecar === 'true') {
    try {
      nativeSidecar = { setting: 'true', kubelets: await readKubeletSurvey(resources) };
    } catch (error) {
      nativeSidecar = { setting: 'true', problem: `could not list the nodes to check their kubelets (${(error as Error).message})` };
    }
  }
  // Fetch everything first, then judge it: the judgement is a pure function of the objects.
  const objects = await fetchInstallation(resources, config, values.secret ?? config.tls.secretName);
  const overrides = objects.overrideConfigMaps.length === 0 ? [] : await checkOverrides(objects.overrideConfigMaps);
  const findings = assessInstallation(objects, config, runtime, {
    now: new Date(),
    ...(nativeSidecar === undefined ? {} : { nativeSidecar }),
    overrides,
  });

  if (output === 'json') out.write(`${JSON.stringify(findings, null, 2)}\n`);
  else {
    const header = `envoy-injector check: context ${kc.getCurrentContext()}, namespace ${config.namespace}, tls.mode ${config.tls.mode}`;
    out.write(formatFindings(findings, header));
  }
  return findings.some((f) => f.level === 'fail') ? 1 : 0;
}

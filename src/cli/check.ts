// `envoy-injector check` (SPEC.md §9): checks an installation through the admin's kubeconfig and
// prints one line per finding; exits 1 when anything is failing.
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { loadConfig } from '../config.ts';
import type { InjectorRuntime } from '../core/types.ts';
import { UsageError } from '../errors.ts';
import { loadKubeConfig } from '../kube/client.ts';
import { assessInstallation, type NativeSidecarCheck, type OverrideCheck } from '../check/assess.ts';
import { OVERRIDE_KEY } from '../constants.ts';
import type { Finding } from '../check/findings.ts';
import { fetchInstallation, type FetchedConfigMap } from '../kube/installation.ts';
import { createKubeResources } from '../kube/resources.ts';
import { detectNativeSidecarSupport, readKubeletSurvey } from '../kube/version.ts';
import { runtimeFor } from '../runtime.ts';
import { VERSION } from '../version.ts';

const USAGE = `Usage: envoy-injector check [options]

Checks an installation through your kubeconfig: the MutatingWebhookConfiguration and its caBundle
against the certificate the replicas serve (read from their Secret), the Service's ready endpoints,
the nodes' kubelets when native sidecars may be injected, the namespaces labelled for injection (and
whether their Pod Security level refuses injected pods), and pods there that run without the proxy
or with a stale one.
Run it with the config file the injector runs with (manifests/config.yaml). Exits 1 on a failure.

Options:
  -c, --config FILE     Config file (default $ENVOY_INJECTOR_CONFIG).
  -n, --namespace NS    Namespace the injector runs in (default: the config's namespace).
  --secret NAME         Secret holding the served certificate (default tls.secretName; for
                        tls.mode files, the Secret you mount).
  --kubeconfig FILE     Kubeconfig to use (default $KUBECONFIG, then ~/.kube/config).
  --context NAME        Kubeconfig context to use (default: the current one).
  -o, --output FORMAT   text (default), or json: an array of {code, level, check, message}.
  -h, --help            Show this help.
`;

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
export async function run(args: string[], out: Pick<NodeJS.WritableStream, 'write'> = process.stdout): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string', short: 'c' },
      namespace: { type: 'string', short: 'n' },
      secret: { type: 'string' },
      kubeconfig: { type: 'string' },
      context: { type: 'string' },
      output: { type: 'string', short: 'o' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: false,
    strict: true,
  });
  if (values.help) {
    out.write(USAGE);
    return 0;
  }
  const output = values.output ?? 'text';
  if (output !== 'text' && output !== 'json') throw new UsageError('--output must be one of text, json');
  const loaded = loadConfig({ file: values.config });
  const config = values.namespace === undefined ? loaded : { ...loaded, namespace: values.namespace };

  let kc: KubeConfig | undefined;
  if (values.kubeconfig !== undefined) {
    if (!existsSync(values.kubeconfig)) throw new UsageError(`--kubeconfig: no such file ${values.kubeconfig}`);
    kc = new KubeConfig();
    kc.loadFromFile(values.kubeconfig);
  } else {
    kc = loadKubeConfig();
  }
  if (kc === undefined) throw new UsageError('no cluster configured: set KUBECONFIG or pass --kubeconfig');
  if (values.context !== undefined) {
    if (kc.getContextObject(values.context) === null) throw new UsageError(`--context: the kubeconfig has no context ${JSON.stringify(values.context)}`);
    kc.setCurrentContext(values.context);
  }
  if (kc.getCurrentCluster() === null) throw new UsageError('the kubeconfig has no current cluster');

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

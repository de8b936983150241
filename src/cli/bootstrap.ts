// `envoy-injector bootstrap -f POD`: the exact bootstrap the pod's proxy runs with — what its
// envoy-init writes, rendered by the same code from the same flags (read from the pod, parsed as
// envoy-init parses them) and the pod's facts as far as its object tells them.
import { LEGACY_BOOTSTRAP_ENV, SIDECAR_CONTAINER_NAME, STATUS_ANNOTATION } from '../constants.ts';
import { DOWNWARD_ENV } from '../core/bootstrap.ts';
import { admissionContext } from '../core/context.ts';
import { expandEnvReferences } from '../core/env-expansion.ts';
import { injectPod } from '../core/inject.ts';
import { expectedIpv6, initInputsOf, overrideFragments, podIdentityOf, podOverrideSource, renderBootstrapFiles } from '../core/pod-bootstrap.ts';
import { readPod, type PodView } from '../core/pod.ts';
import { parseStatus } from '../core/status.ts';
import type { InjectorConfig, InjectorRuntime, JsonObject } from '../core/types.ts';
import { BootstrapOverrideError, type Fragment } from '../core/bootstrap-override.ts';
import { SETTING, annotationOf } from '../core/settings.ts';
import { fragmentProblems } from '../envoy/fragment-check.ts';
import { validateBootstrap } from '../envoy/validate.ts';
import { InjectorError, RefusedError, UsageError } from '../errors.ts';
import { describeTarget, findPodTargets, parseDocuments } from './documents.ts';

export interface BootstrapOutput {
  /** The bootstrap as Envoy loads it, with every fact the pod object tells filled in. */
  readonly bootstrap: JsonObject;
  /** The file envoy-init writes, exactly (for an injected pod that renders in the pod). */
  readonly file?: string;
  /** Facts only the running pod knows, left as `$(VAR)` (e.g. its IPs before it is scheduled). */
  readonly unresolved: readonly string[];
  /** What was assumed that only the pod can tell (whether it has IPv6, under `ipv6: auto`). */
  readonly assumptions: readonly string[];
  /** Whether the input already carried the proxy (else it was injected here first). */
  readonly fromInjectedPod: boolean;
  /** When the pod was injected by another version than this one (whose envoy-init may render differently). */
  readonly versions?: { readonly injectedBy: string; readonly renderedBy: string };
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj | undefined => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : undefined);

/** The ENVOY_BOOTSTRAP value of a pod injected before the bootstrap was rendered in the pod, if any. */
function legacyBootstrapEnv(pod: PodView): string | undefined {
  const sidecar = [...pod.initContainers, ...pod.containers].find((c) => c.name === SIDECAR_CONTAINER_NAME);
  const env = sidecar?.raw['env'];
  if (!Array.isArray(env)) return undefined;
  const value = env.map(obj).find((e) => e?.['name'] === LEGACY_BOOTSTRAP_ENV)?.['value'];
  return typeof value === 'string' ? value : undefined;
}

/**
 * The bootstrap of a pod injected by an older injector, which carried it in ENVOY_BOOTSTRAP with
 * `$(VAR)` references the kubelet expanded: expanded the same way with what the pod object tells.
 */
function legacyBootstrap(raw: string, pod: PodView, namespace: string, where: string): BootstrapOutput {
  const { identity, unknown } = podIdentityOf(pod, namespace);
  const values: Record<string, string> = {};
  for (const e of DOWNWARD_ENV) if (!unknown.includes(e.name)) values[e.name] = identity[e.field];
  let bootstrap: JsonObject;
  try {
    bootstrap = JSON.parse(expandEnvReferences(raw, values)) as JsonObject;
  } catch {
    throw new UsageError(`${where}: ${LEGACY_BOOTSTRAP_ENV} is not valid JSON`);
  }
  const unresolved = unknown.filter((name) => raw.includes(`$(${name})`));
  return { bootstrap, unresolved, assumptions: [], fromInjectedPod: true };
}

/** The version in the pod's status annotation, when it names one. */
function statusVersion(pod: PodView): string | undefined {
  const status = pod.annotations[STATUS_ANNOTATION];
  return status === undefined ? undefined : parseStatus(status)?.version;
}

/** The pod's override fragment as `--override FILE` gives it: the file's name and text. */
export interface OverrideFile {
  readonly path: string;
  readonly text: string;
}

/** The pod override envoy-init would read, from `--override`; refuses a mismatch between the pod and the flag. */
function podOverrideOf(configMap: string | null, override: OverrideFile | undefined, where: string): { text: string; source: string } | undefined {
  if (configMap === null) {
    if (override === undefined) return undefined;
    throw new UsageError(
      `--override ${override.path}: ${where} names no bootstrap override ConfigMap (annotation ${annotationOf(SETTING.proxyBootstrapOverrideConfigMap)}), so its Envoy would not load it`,
    );
  }
  if (override === undefined) {
    throw new UsageError(`${where} loads ${podOverrideSource(configMap)} as its bootstrap override: give that envoy.yaml with --override FILE`);
  }
  return { text: override.text, source: `--override ${override.path} (as ${podOverrideSource(configMap)})` };
}

/** Returns what envoy-init writes for `pod`, an injected pod (as the pod object tells its facts). */
function renderedBootstrap(
  pod: PodView,
  namespace: string,
  runtime: InjectorRuntime,
  where: string,
  override: OverrideFile | undefined,
): BootstrapOutput | undefined {
  const read = initInputsOf(pod);
  if (read === undefined) return undefined;
  if (!read.ok) throw new UsageError(`${where}: ${read.error}`);
  const { inputs } = read;
  if (inputs.bootstrap === null) throw new UsageError(`${where}: its envoy-init renders no bootstrap (no --bootstrap-dir)`);
  const { identity, unknown } = podIdentityOf(pod, namespace);
  const ipv6 = expectedIpv6(inputs.proxy.traffic.ipv6, unknown.includes('INSTANCE_IPS') ? undefined : identity.instanceIps);
  const podOverride = podOverrideOf(inputs.proxy.bootstrapOverrideConfigMap, override, where);
  let rendered: ReturnType<typeof renderBootstrapFiles>;
  try {
    rendered = renderBootstrapFiles({ ...inputs, bootstrap: inputs.bootstrap }, identity, ipv6.ipv6, runtime.version, podOverride);
  } catch (error) {
    if (error instanceof BootstrapOverrideError) throw new InvalidBootstrapError(`${where}: ${error.message}`);
    throw error;
  }
  const { bootstrap, files } = rendered;
  if (podOverride !== undefined || inputs.proxy.bootstrapOverride !== null) {
    strictlyValid(overrideFragments(inputs.proxy, podOverride), bootstrap, where);
  }
  const assumptions = ipv6.assumed
    ? ['the pod has IPv6 (ipv6: auto; envoy-init renders no [::] listeners in a pod without it)']
    : [];
  return { bootstrap, file: files[0]?.content ?? '', unresolved: unknown, assumptions, fromInjectedPod: true };
}

/** A bootstrap Envoy would refuse: what the strict check found, by field. */
export class InvalidBootstrapError extends InjectorError {
  constructor(message: string) {
    super('invalid-bootstrap', message);
  }
}

/**
 * Checks the fragments and the merged bootstrap strictly against Envoy's v3 protos (loaded here,
 * once per process): each fragment alone, so a problem is named at its path in the user's file, then
 * the merged bootstrap with the rules the protos cannot express (names unique, clusters defined).
 */
function strictlyValid(fragments: readonly Fragment[], bootstrap: JsonObject, where: string): void {
  const problems: string[] = [];
  for (const fragment of fragments) problems.push(...fragmentProblems(fragment.value, fragment.source));
  if (problems.length === 0) {
    const { violations } = validateBootstrap(bootstrap);
    problems.push(...violations.map((v) => `the merged bootstrap: ${v.path === '' ? '(root)' : v.path}: ${v.message}`));
  }
  if (problems.length > 0) throw new InvalidBootstrapError(`${where}: Envoy would refuse it: ${problems.join('; ')}`);
}

/**
 * Returns the bootstrap of the first pod or pod template in `text` (injecting it first if needed),
 * with the pod's override fragment merged as envoy-init merges it when the pod names one (`override`).
 */
export function bootstrapFor(
  text: string,
  source: string,
  config: InjectorConfig,
  runtime: InjectorRuntime,
  defaultNamespace: string,
  override?: OverrideFile,
): BootstrapOutput {
  const documents = parseDocuments(text, source);
  for (const [index, doc] of documents.entries()) {
    const [target] = findPodTargets(doc.toJS({ maxAliasCount: 100 }));
    if (target === undefined) continue;
    const namespace = target.namespace ?? defaultNamespace;
    const where = describeTarget(target, index);
    const read = readPod(target.pod);
    // An injected pod runs with what its own flags say, whatever config injected it.
    if (read.ok) {
      const legacy = legacyBootstrapEnv(read.pod);
      if (legacy !== undefined) return legacyBootstrap(legacy, read.pod, namespace, where);
      const rendered = renderedBootstrap(read.pod, namespace, runtime, where, override);
      if (rendered !== undefined) {
        const injectedBy = statusVersion(read.pod);
        if (injectedBy === undefined || injectedBy === runtime.version) return rendered;
        return { ...rendered, versions: { injectedBy, renderedBy: runtime.version } };
      }
    }
    const result = injectPod(target.pod, admissionContext({ namespace, workloadKind: target.kind }), config, runtime);
    const injected = result.pod === undefined ? undefined : readPod(result.pod);
    if (injected === undefined || !injected.ok) {
      const why = result.decision.reasons.map((r) => `[${r.code}] ${r.message}`).join(' ');
      throw new RefusedError(`${where} would not be injected: ${why}`);
    }
    const rendered = renderedBootstrap(injected.pod, namespace, runtime, where, override);
    if (rendered === undefined) throw new Error('an injected pod has no envoy-init');
    return { ...rendered, fromInjectedPod: false };
  }
  throw new UsageError(`${source}: no Pod or pod template found`);
}

/** The notes `bootstrap` prints on standard error: what only the running pod can tell, and what was assumed. */
export function bootstrapNotes(output: BootstrapOutput): string[] {
  const notes: string[] = [];
  if (output.unresolved.length > 0) {
    const names = output.unresolved.map((n) => `$(${n})`).join(', ');
    const are = output.unresolved.length === 1 ? 'is' : 'are';
    notes.push(
      output.file === undefined
        ? `${names} ${are} filled in by the kubelet when the pod runs`
        : `${names} ${are} filled in by envoy-init from the running pod (downward API)`,
    );
  }
  for (const assumption of output.assumptions) notes.push(`assumed ${assumption}`);
  if (output.versions !== undefined) {
    const { injectedBy, renderedBy } = output.versions;
    notes.push(`the pod was injected by envoy-injector ${injectedBy}: this is what version ${renderedBy} renders from its flags (an envoy-init of ${injectedBy} may differ)`);
  }
  return notes;
}

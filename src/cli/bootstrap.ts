// `envoy-injector bootstrap -f POD`: the exact bootstrap the pod's proxy runs with.
import { BOOTSTRAP_ENV, SIDECAR_CONTAINER_NAME } from '../constants.ts';
import { DOWNWARD_ENV } from '../core/bootstrap.ts';
import { expandEnvReferences } from '../core/env-expansion.ts';
import { injectPod } from '../core/inject.ts';
import type { InjectorConfig, InjectorRuntime, JsonObject } from '../core/types.ts';
import { UsageError } from '../errors.ts';
import { describeTarget, findPodTargets, parseDocuments } from './documents.ts';

export interface BootstrapOutput {
  /** The bootstrap as Envoy receives it, with every reference the pod object can answer expanded. */
  readonly bootstrap: JsonObject;
  /** Downward-API references only the running pod can answer (e.g. its IP before it is scheduled). */
  readonly unresolved: readonly string[];
  /** Whether the input already carried the proxy (else it was injected here first). */
  readonly fromInjectedPod: boolean;
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj | undefined => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : undefined);

function sidecarBootstrapEnv(pod: unknown): string | undefined {
  const spec = obj(obj(pod)?.['spec']);
  const containers = [spec?.['initContainers'], spec?.['containers']].flatMap((list) => (Array.isArray(list) ? list : []));
  const sidecar = containers.map(obj).find((c) => c?.['name'] === SIDECAR_CONTAINER_NAME);
  const env = Array.isArray(sidecar?.['env']) ? (sidecar['env'] as unknown[]) : [];
  const value = env.map(obj).find((e) => e?.['name'] === BOOTSTRAP_ENV)?.['value'];
  return typeof value === 'string' ? value : undefined;
}

/** The values the kubelet would give the downward-API env vars, as far as the pod object tells. */
function downwardValues(pod: unknown, namespace: string): Record<string, string> {
  const metadata = obj(obj(pod)?.['metadata']);
  const spec = obj(obj(pod)?.['spec']);
  const status = obj(obj(pod)?.['status']);
  const values: Record<string, string> = { POD_NAMESPACE: namespace };
  const set = (name: string, value: unknown) => {
    if (typeof value === 'string' && value !== '') values[name] = value;
  };
  set('POD_NAME', metadata?.['name']);
  set('NODE_NAME', spec?.['nodeName']);
  set('SERVICE_ACCOUNT', spec?.['serviceAccountName'] ?? 'default');
  const podIPs = Array.isArray(status?.['podIPs']) ? (status['podIPs'] as unknown[]).map((p) => obj(p)?.['ip']) : [];
  if (podIPs.length > 0 && podIPs.every((ip) => typeof ip === 'string')) values['INSTANCE_IPS'] = podIPs.join(',');
  return values;
}

/** Returns the bootstrap of the first pod or pod template in `text` (injecting it first if needed). */
export function bootstrapFor(
  text: string,
  source: string,
  config: InjectorConfig,
  runtime: InjectorRuntime,
  defaultNamespace: string,
): BootstrapOutput {
  const documents = parseDocuments(text, source);
  for (const [index, doc] of documents.entries()) {
    const [target] = findPodTargets(doc.toJS({ maxAliasCount: 100 }));
    if (target === undefined) continue;
    const namespace = target.namespace ?? defaultNamespace;
    let raw = sidecarBootstrapEnv(target.pod);
    const fromInjectedPod = raw !== undefined;
    if (raw === undefined) {
      const result = injectPod(target.pod, { kind: 'Pod', operation: 'CREATE', namespace, workloadKind: target.kind }, config, runtime);
      if (result.pod === undefined) {
        const why = result.decision.reasons.map((r) => `[${r.code}] ${r.message}`).join(' ');
        throw new UsageError(`${describeTarget(target, index)} would not be injected: ${why}`);
      }
      raw = sidecarBootstrapEnv(result.pod);
    }
    if (raw === undefined) throw new UsageError(`${describeTarget(target, index)}: the envoy container has no ${BOOTSTRAP_ENV}`);
    const values = downwardValues(target.pod, namespace);
    const expanded = expandEnvReferences(raw, values);
    let bootstrap: JsonObject;
    try {
      bootstrap = JSON.parse(expanded) as JsonObject;
    } catch {
      throw new UsageError(`${describeTarget(target, index)}: ${BOOTSTRAP_ENV} is not valid JSON`);
    }
    const unresolved = DOWNWARD_ENV.map((e) => e.name).filter((name) => values[name] === undefined && raw.includes(`$(${name})`));
    return { bootstrap, unresolved, fromInjectedPod };
  }
  throw new UsageError(`${source}: no Pod or pod template found`);
}

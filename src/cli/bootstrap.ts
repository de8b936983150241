// `envoy-injector bootstrap -f POD`: the exact bootstrap the pod's proxy runs with.
import { BOOTSTRAP_ENV } from '../constants.ts';
import { DOWNWARD_ENV } from '../core/bootstrap.ts';
import { admissionContext } from '../core/context.ts';
import { expandEnvReferences } from '../core/env-expansion.ts';
import { injectPod } from '../core/inject.ts';
import { readPod } from '../core/pod.ts';
import { injectedBootstrapEnv } from '../core/sidecar.ts';
import type { InjectorConfig, InjectorRuntime, JsonObject } from '../core/types.ts';
import { RefusedError, UsageError } from '../errors.ts';
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
    // An injected pod runs with the bootstrap it carries, whatever config injected it.
    const read = readPod(target.pod);
    const carried = read.ok ? injectedBootstrapEnv(read.pod) : undefined;
    const fromInjectedPod = carried !== undefined;
    let raw = carried;
    if (raw === undefined) {
      const result = injectPod(target.pod, admissionContext({ namespace, workloadKind: target.kind }), config, runtime);
      if (result.bootstrapEnv === undefined) {
        const why = result.decision.reasons.map((r) => `[${r.code}] ${r.message}`).join(' ');
        throw new RefusedError(`${describeTarget(target, index)} would not be injected: ${why}`);
      }
      raw = result.bootstrapEnv;
    }
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

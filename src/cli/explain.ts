// `envoy-injector explain -f FILE`: for each workload, the decision with every reason, the
// effective overrides and what would be added — as text for people, JSON for scripts.
import { injectPod } from '../core/inject.ts';
import type { AdmissionContext, EffectiveProxyConfig, InjectorConfig, InjectorRuntime } from '../core/types.ts';
import type { Reason, Warning } from '../core/reasons.ts';
import { findPodTargets, parseDocuments } from './documents.ts';

export interface ExplainOptions {
  readonly defaultNamespace: string;
  /** Labels of the namespace, when given (`--namespace-labels`); otherwise it is assumed enabled. */
  readonly namespaceLabels?: Readonly<Record<string, string>>;
  /** How native sidecars were resolved (`nativeSidecar: auto (…)`). */
  readonly nativeSidecarDetail: string;
}

export interface Explanation {
  readonly document: number;
  readonly kind: string;
  readonly name: string;
  readonly namespace: string;
  readonly action: 'inject' | 'skip' | 'deny';
  readonly reasons: readonly Reason[];
  readonly warnings: readonly Warning[];
  readonly overrides: Readonly<Record<string, string>>;
  readonly adds?: {
    readonly initContainers: readonly string[];
    readonly initContainersPosition: 'first' | 'last';
    readonly containers: readonly string[];
    readonly volumes: readonly string[];
    readonly annotations: readonly string[];
  };
  readonly proxy?: EffectiveProxyConfig & { readonly configHash: string };
}

/** Explains every pod and pod template in a YAML stream. */
export function explainDocuments(
  text: string,
  source: string,
  config: InjectorConfig,
  runtime: InjectorRuntime,
  options: ExplainOptions,
): Explanation[] {
  const explanations: Explanation[] = [];
  parseDocuments(text, source).forEach((doc, index) => {
    for (const target of findPodTargets(doc.toJS({ maxAliasCount: 100 }))) {
      const namespace = target.namespace ?? options.defaultNamespace;
      const ctx: AdmissionContext = {
        kind: 'Pod',
        operation: 'CREATE',
        namespace,
        workloadKind: target.kind,
        ...(options.namespaceLabels === undefined ? {} : { namespaceLabels: options.namespaceLabels }),
      };
      const result = injectPod(target.pod, ctx, config, runtime);
      const { decision } = result;
      const base = {
        document: index + 1,
        kind: target.kind,
        name: target.name,
        namespace,
        action: decision.action,
        reasons: decision.reasons,
        warnings: result.warnings,
      };
      if (decision.action !== 'inject' || result.status === undefined || result.pod === undefined) {
        explanations.push({ ...base, overrides: {} });
        continue;
      }
      const metadata = result.pod['metadata'] as { annotations?: Record<string, string> };
      const original = (target.pod as { metadata?: { annotations?: Record<string, string> | null } }).metadata?.annotations ?? {};
      explanations.push({
        ...base,
        overrides: decision.overrides,
        adds: {
          initContainers: result.status.initContainers,
          initContainersPosition: decision.proxy.nativeSidecar ? 'first' : 'last',
          containers: result.status.containers,
          volumes: result.status.volumes,
          annotations: Object.keys(metadata.annotations ?? {}).filter((key) => !(key in original)),
        },
        proxy: { ...decision.proxy, configHash: result.status.configHash },
      });
    }
  });
  return explanations;
}

const list = (items: readonly (string | number)[] | '*', none = 'none'): string =>
  items === '*' ? 'all' : items.length === 0 ? none : items.join(', ');

function describeProxy(proxy: NonNullable<Explanation['proxy']>, nativeSidecarDetail: string): string[] {
  const r = proxy.resources;
  const t = proxy.traffic;
  return [
    `  proxy:`,
    `    image: ${proxy.image}`,
    `    sidecar: ${proxy.nativeSidecar ? 'native (init container, restartPolicy Always)' : 'classic (first container)'}; ${nativeSidecarDetail}`,
    ...(proxy.nativeSidecar ? [] : [`    hold application until proxy starts: ${proxy.holdApplicationUntilProxyStarts ? 'yes' : 'no'}`]),
    `    drain: ${proxy.drainSeconds}s; log level: ${proxy.logLevel}; concurrency: ${proxy.concurrency === 0 ? 'one per core' : proxy.concurrency}`,
    `    resources: requests cpu ${r.requests.cpu ?? '-'} memory ${r.requests.memory ?? '-'}; limits cpu ${r.limits.cpu ?? '-'} memory ${r.limits.memory ?? '-'}`,
    `    xDS: ${proxy.ads === null ? 'none (static passthrough bootstrap)' : `ADS at ${proxy.ads.address}${proxy.ads.tls ? ' over TLS' : ''}`}`,
    `    config hash: ${proxy.configHash}`,
    `  capture:`,
    `    inbound TCP → ${t.inboundCapturePort}: ports ${list(t.includeInboundPorts)}, except ${list([...t.proxyPorts, ...t.excludeInboundPorts])}`,
    `    outbound TCP → ${t.outboundCapturePort}: destinations ${list(t.includeOutboundIpRanges)}, except ports ${list(t.excludeOutboundPorts)} and ranges ${list(t.excludeOutboundIpRanges)}; UID/GID ${t.proxyUid}/${t.proxyGid} and loopback never`,
    `    IPv6: ${t.ipv6 ? 'captured like IPv4' : 'not captured (envoy-init fails if the pod has a global IPv6 address)'}`,
  ];
}

/** Formats explanations for people. */
export function formatExplanations(explanations: readonly Explanation[], options: ExplainOptions): string {
  if (explanations.length === 0) return 'No pods or pod templates found.\n';
  const blocks = explanations.map((e) => {
    const name = e.name === '' ? '(unnamed)' : e.name;
    const lines = [`${e.kind} ${name} (namespace ${e.namespace}, document ${e.document}): ${e.action.toUpperCase()}`];
    lines.push('  reasons:');
    for (const r of e.reasons) lines.push(`    ${r.code}: ${r.message}`);
    if (e.warnings.length > 0) {
      lines.push('  warnings:');
      for (const w of e.warnings) lines.push(`    ${w.code}: ${w.message}`);
    }
    if (e.adds !== undefined && e.proxy !== undefined) {
      const overrides = Object.entries(e.overrides);
      lines.push(overrides.length === 0 ? '  overrides: none' : '  overrides:');
      for (const [key, value] of overrides) lines.push(`    ${key}: ${JSON.stringify(value)}`);
      lines.push('  adds:');
      lines.push(`    init containers (${e.adds.initContainersPosition}): ${list(e.adds.initContainers)}`);
      lines.push(`    containers (first): ${list(e.adds.containers)}`);
      lines.push(`    volumes: ${list(e.adds.volumes)}`);
      lines.push(`    annotations: ${list(e.adds.annotations)}`);
      lines.push(...describeProxy(e.proxy, options.nativeSidecarDetail));
    }
    return lines.join('\n');
  });
  const note =
    options.namespaceLabels === undefined
      ? '\n(No --namespace-labels given: each namespace is assumed to be labelled envoy-injector.io/inject=enabled.)\n'
      : '';
  return `${blocks.join('\n\n')}\n${note}`;
}

// `envoy-injector explain -f FILE`: for each workload, the decision with every reason (code and
// sentence) and how to change it, the warnings kubectl would print, the effective overrides and what
// would be added — as text for people, and as JSON of a stable, versioned shape for scripts.
import { INJECT_ANNOTATION, INJECT_LABEL, INJECT_LABEL_ENABLED, INJECTED_VOLUME_NAMES, PROXY_PORTS, STATUS_ANNOTATION } from '../constants.ts';
import { adsUsesTls } from '../core/bootstrap.ts';
import { admissionContext } from '../core/context.ts';
import { injectPod } from '../core/inject.ts';
import { defaultProxyConfig, type ResolvedSetting } from '../core/overrides.ts';
import { REASONS, type Action, type ReasonCode } from '../core/reasons.ts';
import { SETTING, annotationKey, annotationOf, type SettingSource, type SettingsTable } from '../core/settings.ts';
import type { AllOr, EffectiveProxyConfig, InjectorConfig, InjectorRuntime, Ipv6Mode, ResourceList } from '../core/types.ts';
import { manifestTargets, parseSource, type ManifestSource } from './manifests.ts';

/** Version of the JSON shape; raised only when a field is removed or changes meaning. */
export const EXPLAIN_SCHEMA_VERSION = 1;

export interface ExplainOptions {
  readonly defaultNamespace: string;
  /** Labels of the namespace, when given (`--namespace-labels`); otherwise it is assumed enabled. */
  readonly namespaceLabels?: Readonly<Record<string, string>>;
  /** Annotations of the namespace (`--namespace-annotation`): its defaults for the pods' settings. */
  readonly namespaceAnnotations?: Readonly<Record<string, string>>;
  /** Also list every setting of an injected pod with its value and source (`--show-settings`). */
  readonly showSettings?: boolean;
  /** The settings to resolve (tests extend the table); defaults to every setting of the injector. */
  readonly settings?: SettingsTable;
  /** How native sidecars were resolved (`nativeSidecar: auto (…)`). */
  readonly nativeSidecarDetail: string;
}

/** One reason of a decision. */
export interface ExplainedReason {
  readonly code: ReasonCode;
  /** The reason's sentence from the one table (src/core/reasons.ts), the same for every pod. */
  readonly sentence: string;
  /** What is specific to this pod (a value, a container name), when there is something. */
  readonly detail?: string;
  /** The sentence followed by the detail: what logs, denials and the text output show. */
  readonly message: string;
  /** What would change the decision, for skips and denials that can be changed. */
  readonly fix?: string;
}

/** One warning, as kubectl would print it (without the `envoy-injector: ` prefix). */
export interface ExplainedWarning {
  readonly code: string;
  readonly message: string;
}

/** One override annotation that took effect: the pod's own, or its namespace's. */
export interface ExplainedOverride {
  readonly annotation: string;
  /** The annotation's name under envoy-injector.io/. */
  readonly setting: string;
  /** The annotation's value as written on the pod (or the namespace). */
  readonly value: string;
  /** What the injector's configuration alone would give, in the annotation's syntax ("" = unset). */
  readonly default: string;
  /** The namespace whose annotation it is (SPEC.md §4b), when it is not the pod's own. */
  readonly namespace?: string;
}

/** One setting of an injected pod's proxy, with its effective value and where it came from. */
export interface ExplainedSetting {
  /** Its config key. */
  readonly key: string;
  /** Its annotation, when a pod or namespace may set it. */
  readonly annotation?: string;
  /** The value, in the annotation's (or config's) syntax. */
  readonly value: string;
  readonly source: SettingSource;
  /** What the text output calls it, and how it shows the value. */
  readonly label: string;
  readonly shown: string;
}

/** The proxy an injected pod would run, as configured (config defaults plus overrides). */
export interface ExplainedProxy {
  readonly image: string;
  readonly sidecar: 'native' | 'classic';
  /** Classic sidecars only: the app containers wait until the proxy is ready. */
  readonly holdApplicationUntilProxyStarts: boolean;
  readonly drainSeconds: number;
  readonly logLevel: string;
  /** Envoy worker threads; 0 = one per CPU core. */
  readonly concurrency: number;
  readonly resources: { readonly requests: ResourceList; readonly limits: ResourceList };
  /** The xDS control plane, or null for the static passthrough bootstrap. */
  readonly ads: {
    readonly address: string;
    readonly tls: boolean;
    readonly caConfigMap: string | null;
    readonly clientCertSecret: string | null;
  } | null;
  /** The `proxy-mounts`: `secret/NAME=/path` or `configmap/NAME=/path`. */
  readonly mounts: readonly string[];
  readonly accessLog: boolean;
  /** Hash of the effective proxy configuration, as written in the status annotation. */
  readonly configHash: string;
}

/** Which traffic envoy-init would redirect to the proxy. */
export interface ExplainedCapture {
  readonly inbound: { readonly port: number; readonly ports: AllOr<number>; readonly excludePorts: readonly number[] };
  readonly outbound: {
    readonly port: number;
    readonly ipRanges: AllOr<string>;
    readonly excludeIpRanges: readonly string[];
    readonly excludePorts: readonly number[];
  };
  /** Ports of the proxy itself, never redirected. */
  readonly proxyPorts: readonly number[];
  /** Traffic from this UID and GID (the proxy's) is never redirected. */
  readonly bypassUid: number;
  readonly bypassGid: number;
  /** Whether IPv6 may be captured: false only with `ipv6: false` (see ipv6Mode). */
  readonly ipv6: boolean;
  /** `auto` (when the pod has IPv6, decided by envoy-init in the pod), `true` (required) or `false`. */
  readonly ipv6Mode: Ipv6Mode;
  readonly initImage: string;
}

/** What the injection would add to the pod. */
export interface ExplainedAdditions {
  readonly initContainers: readonly string[];
  /** Where they go among the pod's own init containers. */
  readonly initContainersPosition: 'first' | 'last';
  /** Added first among the containers (classic sidecar), or none (native sidecar). */
  readonly containers: readonly string[];
  readonly volumes: readonly string[];
  readonly annotations: readonly string[];
  readonly proxy: ExplainedProxy;
  readonly capture: ExplainedCapture;
}

/** The explanation of one pod or pod template. */
export interface Explanation {
  /** The input file holding it (`-` for standard input), only when several were given. */
  readonly file?: string;
  /** 1-based position of the document holding it in its file. */
  readonly document: number;
  readonly kind: string;
  readonly name: string;
  readonly namespace: string;
  readonly action: Action;
  readonly reasons: readonly ExplainedReason[];
  readonly warnings: readonly ExplainedWarning[];
  /** Override annotations that took effect (empty unless injected). */
  readonly overrides: readonly ExplainedOverride[];
  /** What would be added, or null unless injected. */
  readonly adds: ExplainedAdditions | null;
  /** Every setting of the proxy with its source, with `--show-settings` and when injected. */
  readonly settings?: readonly ExplainedSetting[];
}

/** The whole `explain --output json` document. */
export interface ExplainReport {
  readonly schemaVersion: number;
  readonly injector: { readonly version: string; readonly nativeSidecar: string };
  /** The namespace labels assumed, or null when none were given (namespaces count as enabled). */
  readonly namespaceLabels: Readonly<Record<string, string>> | null;
  /** The namespace annotations given, when any were. */
  readonly namespaceAnnotations?: Readonly<Record<string, string>>;
  readonly workloads: readonly Explanation[];
}

const label = `${INJECT_LABEL}=${INJECT_LABEL_ENABLED}`;

/** How to change each skip or denial, for the workload at hand; undefined where nothing can. */
const FIXES: Partial<Record<ReasonCode, (where: { namespace: string }) => string>> = {
  'namespace-excluded': () => "Use another namespace: the injector's excludedNamespaces (and its own namespace) are never injected.",
  'namespace-disabled': (where) => `kubectl label namespace ${where.namespace} ${label} --overwrite`,
  'namespace-not-enabled': (where) => `kubectl label namespace ${where.namespace} ${label}, or label the pod (template) ${label}.`,
  'disabled-by-annotation': () => `Remove the annotation ${INJECT_ANNOTATION} or set it to "true".`,
  'disabled-by-pod-label': () => `Remove the pod label ${INJECT_LABEL}=disabled.`,
  'invalid-inject-annotation': () => `Set the annotation ${INJECT_ANNOTATION} to "true" or "false".`,
  'host-network': () => "Only without hostNetwork: a host-network pod's traffic is the node's, which is never captured.",
  'windows-pod': () => 'None: only Linux pods can be injected (iptables capture and the Envoy image are Linux).',
  'already-injected': () => `None needed if it carries ${STATUS_ANNOTATION}; otherwise rename its envoy/envoy-init container.`,
  'other-mesh-present': () => "Remove the other mesh's injection (its namespace label or annotation) before injecting this one.",
  'invalid-pod': () => 'Fix the field named above; the API server would refuse the pod as well.',
  'invalid-annotations': () => 'Fix or remove the annotations listed above (accepted values are in the README).',
  'proxy-port-conflict': () => `Move the container off the proxy's ports (${PROXY_PORTS.join(', ')}).`,
  'name-conflict': () => `Rename the pod's volume (the injector needs ${INJECTED_VOLUME_NAMES.join(', ')}).`,
  'exec-too-large': () => 'Shorten the list named above (the README lists the caps on every setting).',
};

function explainReasons(
  reasons: readonly { code: ReasonCode; message: string; detail?: string }[],
  action: Action,
  where: { namespace: string },
): ExplainedReason[] {
  return reasons.map((r) => {
    const fix = action === 'inject' ? undefined : FIXES[r.code]?.(where);
    return {
      code: r.code,
      sentence: REASONS[r.code].sentence,
      ...(r.detail === undefined ? {} : { detail: r.detail }),
      message: r.message,
      ...(fix === undefined ? {} : { fix }),
    };
  });
}

/** The override a setting's value is, when an annotation (the pod's or its namespace's) gave it. */
function describeOverride(resolved: ResolvedSetting, defaults: EffectiveProxyConfig, namespace: string): ExplainedOverride[] {
  const pod = resolved.setting.pod;
  if (pod?.annotation === undefined || resolved.text === undefined) return [];
  if (resolved.source !== 'pod' && resolved.source !== 'namespace') return [];
  return [
    {
      annotation: annotationKey(pod.annotation),
      setting: pod.annotation,
      value: resolved.text,
      default: pod.syntax.format(pod.at.get(defaults)),
      ...(resolved.source === 'namespace' ? { namespace } : {}),
    },
  ];
}

function describeSetting({ setting, value, source }: ResolvedSetting): ExplainedSetting {
  const pod = setting.pod;
  return {
    key: setting.key,
    ...(pod?.annotation === undefined ? {} : { annotation: annotationKey(pod.annotation) }),
    value: pod === undefined ? '' : pod.syntax.format(value),
    source,
    label: pod?.explain.label ?? setting.key,
    shown: pod === undefined ? '' : pod.explain.show(value),
  };
}

function describeProxy(proxy: EffectiveProxyConfig, configHash: string): ExplainedProxy {
  return {
    image: proxy.image,
    sidecar: proxy.nativeSidecar ? 'native' : 'classic',
    holdApplicationUntilProxyStarts: proxy.holdApplicationUntilProxyStarts,
    drainSeconds: proxy.drainSeconds,
    logLevel: proxy.logLevel,
    concurrency: proxy.concurrency,
    resources: { requests: { ...proxy.resources.requests }, limits: { ...proxy.resources.limits } },
    ads:
      proxy.ads === null
        ? null
        : { address: proxy.ads.address, tls: adsUsesTls(proxy.ads), caConfigMap: proxy.ads.caConfigMap, clientCertSecret: proxy.ads.clientCertSecret },
    mounts: proxy.mounts.map((m) => `${m.kind}/${m.name}=${m.path}`),
    accessLog: proxy.accessLog,
    configHash,
  };
}

function describeCapture(proxy: EffectiveProxyConfig): ExplainedCapture {
  const t = proxy.traffic;
  return {
    inbound: { port: t.inboundCapturePort, ports: t.includeInboundPorts, excludePorts: t.excludeInboundPorts },
    outbound: {
      port: t.outboundCapturePort,
      ipRanges: t.includeOutboundIpRanges,
      excludeIpRanges: t.excludeOutboundIpRanges,
      excludePorts: t.excludeOutboundPorts,
    },
    proxyPorts: t.proxyPorts,
    bypassUid: t.proxyUid,
    bypassGid: t.proxyGid,
    ipv6: t.ipv6 !== 'false',
    ipv6Mode: t.ipv6,
    initImage: proxy.initImage,
  };
}

/** Explains every pod and pod template of the sources, with the same core the webhook runs. */
export function explainSources(
  sources: readonly ManifestSource[],
  config: InjectorConfig,
  runtime: InjectorRuntime,
  options: ExplainOptions,
): Explanation[] {
  const defaults = defaultProxyConfig(config, runtime, options.settings);
  const explanations: Explanation[] = [];
  const several = sources.length > 1;
  for (const manifest of sources.flatMap((s) => s.manifests)) {
    for (const target of manifestTargets(manifest)) {
      const namespace = target.namespace ?? options.defaultNamespace;
      const ctx = admissionContext({
        namespace,
        workloadKind: target.kind,
        namespaceLabels: options.namespaceLabels,
        namespaceAnnotations: options.namespaceAnnotations,
      });
      const result = injectPod(target.pod, ctx, config, runtime, options.settings);
      const { decision } = result;
      const base = {
        ...(several ? { file: manifest.source } : {}),
        document: manifest.number,
        kind: target.kind,
        name: target.name,
        namespace,
        action: decision.action,
        reasons: explainReasons(decision.reasons, decision.action, { namespace }),
        warnings: result.warnings.map((w) => ({ code: w.code, message: w.message })),
      };
      if (decision.action !== 'inject' || result.status === undefined || result.plan === undefined) {
        explanations.push({ ...base, overrides: [], adds: null });
        continue;
      }
      explanations.push({
        ...base,
        overrides: decision.settings.flatMap((resolved) => describeOverride(resolved, defaults, namespace)),
        adds: {
          initContainers: result.status.initContainers,
          initContainersPosition: decision.proxy.nativeSidecar ? 'first' : 'last',
          containers: result.status.containers,
          volumes: result.status.volumes,
          annotations: Object.keys(result.plan.annotations),
          proxy: describeProxy(decision.proxy, result.status.configHash),
          capture: describeCapture(decision.proxy),
        },
        ...(options.showSettings === true ? { settings: decision.settings.map(describeSetting) } : {}),
      });
    }
  }
  return explanations;
}

/** How the ADS connection is secured, as `explain` writes it after the address. */
function adsTlsText(ads: NonNullable<ExplainedProxy['ads']>): string {
  if (!ads.tls) return '';
  const ca = ads.caConfigMap === null ? 'system CAs' : `CA from ConfigMap ${ads.caConfigMap}`;
  const client = ads.clientCertSecret === null ? '' : `, client certificate from Secret ${ads.clientCertSecret}`;
  return ` over TLS (${ca}${client})`;
}

/** Explains every pod and pod template of one source's text (YAML or JSON). */
export function explainDocuments(
  text: string,
  source: string,
  config: InjectorConfig,
  runtime: InjectorRuntime,
  options: ExplainOptions,
): Explanation[] {
  return explainSources([parseSource({ name: source, text })], config, runtime, options);
}

/** Returns the `--output json` document: the explanations in an envelope saying what was assumed. */
export function explainReport(
  explanations: readonly Explanation[],
  runtime: InjectorRuntime,
  options: ExplainOptions,
): ExplainReport {
  return {
    schemaVersion: EXPLAIN_SCHEMA_VERSION,
    injector: { version: runtime.version, nativeSidecar: options.nativeSidecarDetail },
    namespaceLabels: options.namespaceLabels ?? null,
    ...(options.namespaceAnnotations === undefined ? {} : { namespaceAnnotations: options.namespaceAnnotations }),
    workloads: explanations,
  };
}

const show = (items: AllOr<string | number>, none = 'none'): string =>
  items === '*' ? 'all' : items.length === 0 ? none : items.join(', ');

function formatAdditions(adds: ExplainedAdditions, sidecarSource: string): string[] {
  const p = adds.proxy;
  const c = adds.capture;
  const r = p.resources;
  return [
    '  adds:',
    `    init containers (${adds.initContainersPosition}): ${show(adds.initContainers)}`,
    `    containers (first): ${show(adds.containers)}`,
    `    volumes: ${show(adds.volumes)}`,
    `    annotations: ${show(adds.annotations)}`,
    '  proxy:',
    `    image: ${p.image}`,
    `    sidecar: ${p.sidecar === 'native' ? 'native (init container, restartPolicy Always)' : 'classic (first container)'}; ${sidecarSource}`,
    ...(p.sidecar === 'native' ? [] : [`    hold application until proxy starts: ${p.holdApplicationUntilProxyStarts ? 'yes' : 'no'}`]),
    `    drain: ${p.drainSeconds}s; log level: ${p.logLevel}; concurrency: ${p.concurrency === 0 ? 'one per CPU of its cpuset' : p.concurrency}`,
    `    resources: requests cpu ${r.requests.cpu ?? '-'} memory ${r.requests.memory ?? '-'}; limits cpu ${r.limits.cpu ?? '-'} memory ${r.limits.memory ?? '-'}`,
    `    xDS: ${p.ads === null ? 'none (static passthrough bootstrap)' : `ADS at ${p.ads.address}${adsTlsText(p.ads)}`}`,
    ...(p.mounts.length === 0 ? [] : [`    mounts (read-only): ${p.mounts.join(', ')}`]),
    `    config hash: ${p.configHash}`,
    '  capture:',
    `    inbound TCP → ${c.inbound.port}: ports ${show(c.inbound.ports)}, except ${show([...c.proxyPorts, ...c.inbound.excludePorts])}`,
    `    outbound TCP → ${c.outbound.port}: destinations ${show(c.outbound.ipRanges)}, except ports ${show(c.outbound.excludePorts)} and ranges ${show(c.outbound.excludeIpRanges)}; never from UID/GID ${c.bypassUid}/${c.bypassGid} or to loopback`,
    `    IPv6: ${IPV6_TEXT[c.ipv6Mode]}`,
  ];
}

const IPV6_TEXT: Readonly<Record<Ipv6Mode, string>> = {
  auto: 'captured like IPv4 when the pod has IPv6 (envoy-init decides in the pod; without it the proxy listens on IPv4 only)',
  true: 'captured like IPv4 (envoy-init fails in a pod without IPv6)',
  false: 'not captured (envoy-init fails if the pod has a global IPv6 address)',
};

const SOURCE: Readonly<Record<SettingSource, string>> = {
  pod: "the pod's annotation",
  namespace: "the namespace's annotation",
  config: 'config',
  default: 'default',
};

/** The settings section: every setting's explain line (label and value) and where the value came from. */
function formatSettings(settings: readonly ExplainedSetting[]): string[] {
  return ['  settings:', ...settings.map((s) => `    ${s.label}: ${s.shown} (${SOURCE[s.source]}; ${s.key})`)];
}

const VERDICT: Readonly<Record<Action, string>> = {
  inject: 'INJECT',
  skip: 'SKIP (created unchanged)',
  deny: 'DENY (the pod would be refused)',
  reorder: 'REORDER (its init containers are put back in order)',
};

/** Formats explanations for people: one block per workload. */
export function formatExplanations(explanations: readonly Explanation[], options: ExplainOptions): string {
  if (explanations.length === 0) return 'No pods or pod templates found.\n';
  const blocks = explanations.map((e) => {
    const name = e.name === '' ? '(unnamed)' : e.name;
    const where = e.file === undefined ? `document ${e.document}` : `${e.file === '-' ? 'standard input' : e.file} document ${e.document}`;
    const lines = [`${e.kind || '(no kind)'} ${name} (namespace ${e.namespace}, ${where}): ${VERDICT[e.action]}`];
    lines.push('  reasons:');
    for (const r of e.reasons) {
      lines.push(`    ${r.code}: ${r.message}`);
      if (r.fix !== undefined) lines.push(`      fix: ${r.fix}`);
    }
    if (e.warnings.length > 0) {
      lines.push('  warnings (kubectl prints these):');
      for (const w of e.warnings) lines.push(`    ${w.code}: ${w.message}`);
    }
    if (e.adds !== null) {
      lines.push(e.overrides.length === 0 ? '  overrides: none' : '  overrides:');
      for (const o of e.overrides) {
        const from = o.namespace === undefined ? '' : ` from namespace ${o.namespace}`;
        lines.push(`    ${o.annotation}: ${JSON.stringify(o.value)}${from} (default ${o.default === '' ? 'none' : JSON.stringify(o.default)})`);
      }
      const native = e.overrides.find((o) => o.annotation === annotationOf(SETTING.nativeSidecar));
      const sidecarSource =
        native === undefined
          ? options.nativeSidecarDetail
          : native.namespace === undefined
            ? `set by the pod's ${native.annotation} annotation`
            : `set by namespace ${native.namespace}'s ${native.annotation} annotation`;
      lines.push(...formatAdditions(e.adds, sidecarSource));
      if (e.settings !== undefined) lines.push(...formatSettings(e.settings));
    }
    return lines.join('\n');
  });
  const note =
    options.namespaceLabels === undefined
      ? `\n(No --namespace-labels given: each namespace is assumed to be labelled ${label}.)\n`
      : '';
  return `${blocks.join('\n\n')}\n${note}`;
}

// Every setting of the injector, declared once. An entry says where the config file keeps it (its
// key, from which its environment variable follows), its value syntax and default, and — for what
// shapes a pod's proxy — where the pod's effective proxy config keeps it, the pod and namespace
// annotation that may set it (SPEC.md §5, §4b), the init-iptables flag that carries it to envoy-init,
// whether it enters the config hash, the line `explain` shows, and the README's text. Config
// loading, annotation validation, the envoy-init flags, `explain`, the config hash and the README
// tables are all derived from this table: a new setting is one entry here, its field in the config
// types it lives in (types.ts: the compiler then checks the entry against them), and its behaviour.
//
// Server and TLS keys live here too although no pod can set them (no `pod` part): then the config
// file has one list of keys, and the README's config table and annotation table come from one place.
import { DOMAIN, INJECT_ANNOTATION, PORTS, PROXY_GID, PROXY_PORTS, PROXY_UID, STATUS_ANNOTATION } from '../constants.ts';
import { pathLenses, type Draft, type PathLens } from './lens.ts';
import type { AdsConfig, AdsTls, CaptureMode, EffectiveProxyConfig, InjectorConfig, InjectorRuntime, Ipv6Mode, JsonObject, NativeSidecarMode } from './types.ts';
import * as v from './value-types.ts';
import type { ValueType } from './value-types.ts';

/** Prefix of the environment variable of every config key, e.g. ENVOY_INJECTOR_PROXY_IMAGE. */
const ENV_PREFIX = 'ENVOY_INJECTOR_';
/** The pinned default Envoy image, from its official line. */
const DEFAULT_PROXY_IMAGE = 'envoyproxy/envoy:v1.39.6';
/** Repository of this project's image, which envoy-init runs (at the injector's own version). */
export const INIT_IMAGE_REPOSITORY = 'ghcr.io/envoy-injector/envoy-injector';

/** Where a pod's effective value of a setting came from, strongest first. */
export type SettingSource = 'pod' | 'namespace' | 'config' | 'default';

/** How a setting applies to each pod's proxy. */
export interface PodSetting<C, E> {
  /** Where the pod's effective proxy config keeps it. */
  readonly at: PathLens<EffectiveProxyConfig, E>;
  /** The pod's value when neither the pod nor its namespace sets one, from the config's value. */
  readonly fromConfig: (value: C, runtime: InjectorRuntime) => E;
  /** Syntax of the annotations and the flag. */
  readonly syntax: ValueType<E>;
  /** Name of the annotation (`envoy-injector.io/<name>`) on a pod or its namespace that sets it. */
  readonly annotation?: string;
  /** What the annotation accepts, for the README's annotation table. */
  readonly accepted?: string;
  /** The `init-iptables` flag (without `--`) that carries it to envoy-init. */
  readonly flag?: string;
  /** Whether the flag is left out when its value is the empty text (what every pod would otherwise carry for nothing). */
  readonly flagOnlyWhenSet?: boolean;
  /** Whether it enters the config hash: false only for what cannot change the injected proxy. */
  readonly hashed: boolean;
  /** How `explain` names it, and shows a value. */
  readonly explain: { readonly label: string; readonly show: (value: E) => string };
}

/**
 * One setting. C is its type in the config, E in a pod's effective proxy config (the same, except
 * where the config's choice is resolved per process, as `nativeSidecar: auto`).
 */
// `any` only lets the table hold settings of different types; each entry is checked where it is made.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export interface Setting<C = any, E = any> {
  /** Its key in the config file, e.g. `traffic.excludeInboundPorts`. */
  readonly key: string;
  /** Its environment variable, derived from the key (ENVOY_INJECTOR_TRAFFIC_EXCLUDE_INBOUND_PORTS). */
  readonly env: string;
  /** Where the config keeps it. */
  readonly config: PathLens<InjectorConfig, C>;
  /** Syntax in the config file and the environment. */
  readonly syntax: ValueType<C>;
  /** Built-in default, or how it follows from the injector's version (envoy-init's image). */
  readonly default: C | ((injectorVersion: string) => C);
  /** README: what it does, and the default as written there when it is not simply the value. */
  readonly doc: { readonly description: string; readonly default?: string };
  /** Set for the settings of the pod's proxy. */
  readonly pod?: PodSetting<C, E>;
}

/** The settings the injector knows, in the order every derived list follows. */
export type SettingsTable = readonly Setting[];

/** Returns the environment variable that sets the config key `key`. */
export function envVarFor(key: string): string {
  return ENV_PREFIX + key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/\./g, '_').toUpperCase();
}

/** Returns the full annotation key of a pod setting's annotation. */
export function annotationKey(name: string): string {
  return `${DOMAIN}/${name}`;
}

/** Returns the full key of the annotation of a setting that has one (a programming error otherwise). */
export function annotationOf(setting: Setting): string {
  const name = setting.pod?.annotation;
  if (name === undefined) throw new Error(`setting ${setting.key} has no annotation`);
  return annotationKey(name);
}

/** Returns a setting's built-in default for injector version `version`. */
export function defaultOf<C>(setting: Setting<C>, version: string): C {
  const value = setting.default;
  return typeof value === 'function' ? (value as (version: string) => C)(version) : value;
}

/**
 * How a setting's pod part is declared: as PodSetting, except that `explain` may be the label alone
 * (the value then shown in its syntax), `syntax` and `fromConfig` default to the config's, and
 * `hashed` to true.
 */
export interface PodSpec<C, E> {
  readonly at: PathLens<EffectiveProxyConfig, E>;
  readonly annotation?: string;
  readonly accepted?: string;
  readonly flag?: string;
  readonly flagOnlyWhenSet?: boolean;
  readonly hashed?: boolean;
  readonly explain: string | { readonly label: string; readonly show: (value: E) => string };
  readonly syntax?: ValueType<E>;
  readonly fromConfig?: (value: C, runtime: InjectorRuntime) => E;
}

/**
 * How a setting is declared (see `setting`): its type is the type of its place in the config, which
 * its syntax and default must fit; `doc` may be the description alone.
 */
export interface SettingSpec<C, E> {
  readonly config: PathLens<InjectorConfig, C>;
  readonly syntax: ValueType<NoInfer<C>>;
  readonly default: NoInfer<C> | ((injectorVersion: string) => NoInfer<C>);
  readonly doc: string | { readonly description: string; readonly default?: string };
  readonly pod?: PodSpec<C, E>;
}

/** Shows a value as its syntax writes it, with `none` for the empty text and `all` for `*`. */
function shower<T>(syntax: ValueType<T>): (value: T) => string {
  return (value) => {
    const text = syntax.format(value);
    return text === '' ? 'none' : text === '*' ? 'all' : text;
  };
}

/** Makes a setting whose pod value is its config value. */
export function setting<T>(spec: SettingSpec<T, T> & { readonly pod?: { readonly fromConfig?: undefined } }): Setting<T, T>;
/** Makes a setting whose pod value is resolved from its config value (it has its own syntax then). */
export function setting<C, E>(
  spec: SettingSpec<C, E> & { readonly pod: { readonly fromConfig: (value: C, runtime: InjectorRuntime) => E; readonly syntax: ValueType<E> } },
): Setting<C, E>;
export function setting<C, E>(spec: SettingSpec<C, E>): Setting<C, E> {
  const key = spec.config.path.join('.');
  const doc = typeof spec.doc === 'string' ? { description: spec.doc } : spec.doc;
  const pod = spec.pod;
  if (pod === undefined) return { key, env: envVarFor(key), config: spec.config, syntax: spec.syntax, default: spec.default, doc };
  // Without a resolution of its own the pod's value is the config's, in the same syntax (the
  // overloads above make sure C and E are the same type then).
  const syntax = pod.syntax ?? (spec.syntax as unknown as ValueType<E>);
  const explain = typeof pod.explain === 'string' ? { label: pod.explain, show: shower(syntax) } : pod.explain;
  return {
    key,
    env: envVarFor(key),
    config: spec.config,
    syntax: spec.syntax,
    default: spec.default,
    doc,
    pod: {
      at: pod.at,
      fromConfig: pod.fromConfig ?? ((value: C) => value as unknown as E),
      syntax,
      ...(pod.annotation === undefined ? {} : { annotation: pod.annotation }),
      ...(pod.accepted === undefined ? {} : { accepted: pod.accepted }),
      ...(pod.flag === undefined ? {} : { flag: pod.flag }),
      ...(pod.flagOnlyWhenSet === undefined ? {} : { flagOnlyWhenSet: pod.flagOnlyWhenSet }),
      hashed: pod.hashed ?? true,
      explain,
    },
  };
}

const configAt = pathLenses<InjectorConfig>();
const proxyAt = pathLenses<EffectiveProxyConfig>();

/**
 * The effective ADS config is null without an address; its TLS choices belong to it. The address
 * comes first in the table, so the others find `ads` set (and are dropped when there is none). The
 * config keeps all four apart (`proxy.ads.*`): a config CA applies to whatever address a namespace
 * or pod names.
 */
const proxyAds = {
  address: {
    path: ['ads', 'address'],
    get: (source: EffectiveProxyConfig) => source.ads?.address ?? null,
    set: (draft: Draft<EffectiveProxyConfig>, value: string | null) => {
      draft.ads = value === null ? null : { tls: false, caConfigMap: null, clientCertSecret: null, ...draft.ads, address: value };
    },
  } satisfies PathLens<EffectiveProxyConfig, string | null>,
  ...adsTlsLenses(),
};

function adsTlsLenses(): { [K in keyof AdsTls]: PathLens<EffectiveProxyConfig, AdsTls[K]> } {
  const lens = <K extends keyof AdsTls>(key: K, none: AdsTls[K]): PathLens<EffectiveProxyConfig, AdsTls[K]> => ({
    path: ['ads', key],
    get: (source) => source.ads?.[key] ?? none,
    set: (draft, value) => {
      if (draft.ads !== null && draft.ads !== undefined) draft.ads = { ...draft.ads, [key]: value };
    },
  });
  return { tls: lens('tls', false), caConfigMap: lens('caConfigMap', null), clientCertSecret: lens('clientCertSecret', null) };
}

const ports = 'comma-separated ports, at most 256';
const resolveNativeSidecar = (mode: NativeSidecarMode, runtime: InjectorRuntime): boolean =>
  mode === 'auto' ? runtime.nativeSidecarSupported : mode === 'true';
const quantity = (label: string, syntax: ValueType<string>) => ({
  label,
  show: (value: string | undefined) => (value === undefined ? 'none' : syntax.format(value)),
});
/** An annotation can set an optional resource but not unset it (the empty text is refused). */
const settable = (syntax: ValueType<string>): ValueType<string | undefined> => ({
  parse: syntax.parse,
  format: (value) => (value === undefined ? '' : syntax.format(value)),
  hint: syntax.hint,
});

/** Every setting, by name (for the few places that need one in particular). */
export const SETTING = {
  serverHost: setting({
    config: configAt('server', 'host'),
    syntax: v.word('a host name or IP address to listen on'),
    default: '127.0.0.1',
    doc: 'Address the webhook listens on.',
  }),
  serverPort: setting({ config: configAt('server', 'port'), syntax: v.port, default: 8443, doc: 'HTTPS port of the webhook.' }),
  serverBodyLimitBytes: setting({
    config: configAt('server', 'bodyLimitBytes'),
    syntax: v.integer(1024, 64 * 1024 * 1024),
    default: 7 * 1024 * 1024,
    doc: { description: 'Largest request body accepted (1 KiB–64 MiB); a larger one is answered 413.', default: '`7340032` (7 MiB)' },
  }),
  serverRequestTimeoutMs: setting({
    config: configAt('server', 'requestTimeoutMs'),
    syntax: v.integer(100, 600_000),
    default: 10_000,
    doc: 'Time limit for receiving a whole request, in milliseconds.',
  }),
  serverMaxConcurrentAdmissions: setting({
    config: configAt('server', 'maxConcurrentAdmissions'),
    syntax: v.integer(1, 100_000),
    default: 32,
    doc: 'Admissions processed at once, counted from a complete body to its answer; beyond it the webhook answers 503 at once.',
  }),
  serverMaxRequestsPerPeer: setting({
    config: configAt('server', 'maxRequestsPerPeer'),
    syntax: v.integer(1, 100_000),
    default: 32,
    doc: 'Requests in progress (headers received, not yet answered) from one remote address; beyond it that address gets 503 at once (see [Limits and performance](#limits-and-performance)).',
  }),
  serverBodyTimeoutMs: setting({
    config: configAt('server', 'bodyTimeoutMs'),
    syntax: v.integer(100, 600_000),
    default: 5_000,
    doc: "Time limit from a request's headers to the end of its body, in milliseconds; a slower body gets 408.",
  }),
  serverShutdownGraceMs: setting({
    config: configAt('server', 'shutdownGraceMs'),
    syntax: v.integer(0, 600_000),
    default: 20_000,
    doc: 'Time allowed to finish in-flight requests after SIGTERM, in milliseconds.',
  }),
  tlsMode: setting({
    config: configAt('tls', 'mode'),
    syntax: v.oneOf('local', 'files', 'secret'),
    default: 'local',
    doc: 'Where the serving certificate comes from: `local`, `files` or `secret` (see [TLS modes](#tls-modes)).',
  }),
  tlsCertDir: setting({
    config: configAt('tls', 'certDir'),
    syntax: v.word('a directory path'),
    default: 'certs',
    doc: 'Directory of the generated (`local`) or mounted (`files`) certificate material.',
  }),
  tlsDnsNames: setting({
    config: configAt('tls', 'dnsNames'),
    syntax: v.hostList,
    default: [],
    doc: 'Extra DNS names and IP addresses of the serving certificate, at most 100.',
  }),
  tlsServiceName: setting({
    config: configAt('tls', 'serviceName'),
    syntax: v.objectName,
    default: 'envoy-injector',
    doc: "The injector's Service, which the API server calls.",
  }),
  tlsSecretName: setting({
    config: configAt('tls', 'secretName'),
    syntax: v.objectName,
    default: 'envoy-injector-tls',
    doc: 'The Secret holding the CA and serving certificate (`secret` mode).',
  }),
  tlsWebhookConfigName: setting({
    config: configAt('tls', 'webhookConfigName'),
    syntax: v.objectName,
    default: 'envoy-injector',
    doc: 'The MutatingWebhookConfiguration whose `caBundle` the injector keeps (`secret` mode).',
  }),
  // Below half of the serving certificate's 365 days, so a renewed certificate is not due again at once.
  tlsRenewBeforeDays: setting({
    config: configAt('tls', 'renewBeforeDays'),
    syntax: v.integer(1, 180),
    default: 30,
    doc: 'Renew the serving certificate this many days (1–180) before it expires.',
  }),
  tlsResyncSeconds: setting({
    config: configAt('tls', 'resyncSeconds'),
    syntax: v.integer(5, 86_400),
    default: 60,
    doc: 'How often `secret` mode re-checks the Secret and caBundle, and `files` mode re-reads the files besides watching them.',
  }),
  namespace: setting({
    config: configAt('namespace'),
    syntax: v.objectName,
    default: 'envoy-injector',
    doc: 'Namespace the injector runs in, never injected (`POD_NAMESPACE` from the downward API sets it too).',
  }),
  excludedNamespaces: setting({
    config: configAt('excludedNamespaces'),
    syntax: v.namespaceList,
    default: ['kube-system', 'kube-public', 'kube-node-lease'],
    doc: 'Namespaces never injected, whatever their labels; at most 1000.',
  }),
  logLevel: setting({
    config: configAt('logLevel'),
    syntax: v.oneOf('trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'),
    default: 'info',
    doc: "The injector's own log level.",
  }),

  // The pod's traffic capture: envoy-init's flags.
  includeInboundPorts: setting({
    config: configAt('traffic', 'includeInboundPorts'),
    syntax: v.allOrPortList,
    default: '*',
    doc: 'Inbound ports redirected to the proxy: `*` for all, empty for no inbound capture.',
    pod: {
      at: proxyAt('traffic', 'includeInboundPorts'),
      annotation: 'include-inbound-ports',
      accepted: `\`*\` or ${ports} (empty = no inbound capture)`,
      flag: 'include-inbound-ports',
      explain: 'inbound ports captured',
    },
  }),
  excludeInboundPorts: setting({
    config: configAt('traffic', 'excludeInboundPorts'),
    syntax: v.portList,
    default: [],
    doc: 'Inbound ports never redirected to the proxy.',
    pod: {
      at: proxyAt('traffic', 'excludeInboundPorts'),
      annotation: 'exclude-inbound-ports',
      accepted: ports,
      flag: 'exclude-inbound-ports',
      explain: 'inbound ports not captured',
    },
  }),
  excludeOutboundPorts: setting({
    config: configAt('traffic', 'excludeOutboundPorts'),
    syntax: v.portList,
    default: [],
    doc: 'Outbound destination ports never redirected to the proxy.',
    pod: {
      at: proxyAt('traffic', 'excludeOutboundPorts'),
      annotation: 'exclude-outbound-ports',
      accepted: ports,
      flag: 'exclude-outbound-ports',
      explain: 'outbound ports not captured',
    },
  }),
  includeOutboundIpRanges: setting({
    config: configAt('traffic', 'includeOutboundIpRanges'),
    syntax: v.allOrCidrList,
    default: '*',
    doc: 'Outbound destinations redirected to the proxy: `*` for all, IPv4/IPv6 CIDRs, or empty for no outbound capture.',
    pod: {
      at: proxyAt('traffic', 'includeOutboundIpRanges'),
      annotation: 'include-outbound-ip-ranges',
      accepted: '`*` or comma-separated CIDRs, at most 512 (empty = no outbound capture)',
      flag: 'include-outbound-ip-ranges',
      explain: 'outbound destinations captured',
    },
  }),
  excludeOutboundIpRanges: setting({
    config: configAt('traffic', 'excludeOutboundIpRanges'),
    syntax: v.cidrList,
    default: [],
    doc: 'Outbound destinations never redirected: IPv4 and IPv6 CIDRs, each applied to its own family.',
    pod: {
      at: proxyAt('traffic', 'excludeOutboundIpRanges'),
      annotation: 'exclude-outbound-ip-ranges',
      accepted: 'comma-separated IPv4/IPv6 CIDRs, at most 512',
      flag: 'exclude-outbound-ip-ranges',
      explain: 'outbound destinations not captured',
    },
  }),

  // The proxy a pod may change by annotation (SPEC.md §5).
  proxyImage: setting({
    config: configAt('proxy', 'image'),
    syntax: v.image,
    default: DEFAULT_PROXY_IMAGE,
    doc: 'Envoy image of the sidecar.',
    pod: {
      at: proxyAt('image'),
      annotation: 'proxy-image',
      accepted: "an image reference (`bash` and `sleep` in it for a classic sidecar's hooks, see [What is injected](#what-is-injected))",
      explain: 'proxy image',
    },
  }),
  proxyCpu: setting({
    config: configAt('proxy', 'resources', 'requests', 'cpu'),
    syntax: v.optional(v.cpu),
    default: '100m',
    doc: "The sidecar's CPU request (empty: none).",
    pod: {
      at: proxyAt('resources', 'requests', 'cpu'),
      annotation: 'proxy-cpu',
      accepted: 'a CPU quantity (`100m`, `2`)',
      syntax: settable(v.cpu),
      explain: quantity('proxy CPU request', v.cpu),
    },
  }),
  proxyMemory: setting({
    config: configAt('proxy', 'resources', 'requests', 'memory'),
    syntax: v.optional(v.memory),
    default: '128Mi',
    doc: "The sidecar's memory request (empty: none).",
    pod: {
      at: proxyAt('resources', 'requests', 'memory'),
      annotation: 'proxy-memory',
      accepted: 'a memory quantity (`128Mi`)',
      syntax: settable(v.memory),
      explain: quantity('proxy memory request', v.memory),
    },
  }),
  // CPU limits are set so that namespaces whose ResourceQuota or LimitRange requires them accept
  // injected pods (LimitRange defaults are applied before webhooks run, not to what they add).
  proxyCpuLimit: setting({
    config: configAt('proxy', 'resources', 'limits', 'cpu'),
    syntax: v.optional(v.cpu),
    default: '2',
    doc: "The sidecar's CPU limit (empty: none). Limits are set so that namespaces whose ResourceQuota or LimitRange requires them accept injected pods.",
    pod: {
      at: proxyAt('resources', 'limits', 'cpu'),
      annotation: 'proxy-cpu-limit',
      accepted: 'a CPU quantity (`100m`, `2`)',
      syntax: settable(v.cpu),
      explain: quantity('proxy CPU limit', v.cpu),
    },
  }),
  proxyMemoryLimit: setting({
    config: configAt('proxy', 'resources', 'limits', 'memory'),
    syntax: v.optional(v.memory),
    default: '1Gi',
    doc: "The sidecar's memory limit (empty: none).",
    pod: {
      at: proxyAt('resources', 'limits', 'memory'),
      annotation: 'proxy-memory-limit',
      accepted: 'a memory quantity (`128Mi`)',
      syntax: settable(v.memory),
      explain: quantity('proxy memory limit', v.memory),
    },
  }),
  proxyLogLevel: setting({
    config: configAt('proxy', 'logLevel'),
    syntax: v.logLevel,
    default: 'warning',
    doc: "Envoy's log level.",
    pod: {
      at: proxyAt('logLevel'),
      annotation: 'log-level',
      accepted: '`trace`, `debug`, `info`, `warning` (`warn`), `error`, `critical`, `off` (any case)',
      explain: 'proxy log level',
    },
  }),
  proxyConcurrency: setting({
    config: configAt('proxy', 'concurrency'),
    syntax: v.integer(0, 256),
    default: 2,
    doc: "Envoy worker threads (0–256); 0 = one per CPU of the container's cpuset, usually the node's.",
    pod: {
      at: proxyAt('concurrency'),
      annotation: 'concurrency',
      accepted:
        "0–256 Envoy worker threads; 0 = one per CPU of the container's cpuset (Envoy's `--cpuset-threads`): every CPU of the node unless the kubelet's static CPU manager pins the container — a CPU limit does not reduce it",
      explain: { label: 'proxy worker threads', show: (n: number) => (n === 0 ? 'one per CPU of its cpuset' : String(n)) },
    },
  }),
  nativeSidecar: setting({
    config: configAt('nativeSidecar'),
    syntax: v.oneOf('auto', 'true', 'false'),
    default: 'auto',
    doc: 'Native sidecars: `true`, `false`, or `auto`, which asks the API server at start: ≥ 1.29, and every node\'s kubelet too → native (see [Native sidecars and node versions](#native-sidecars-and-node-versions)).',
    pod: {
      at: proxyAt('nativeSidecar'),
      fromConfig: resolveNativeSidecar,
      syntax: v.boolean,
      annotation: 'native-sidecar',
      accepted: '`true` or `false`: run the proxy as a native sidecar or a classic one (see [What is injected](#what-is-injected))',
      explain: { label: 'native sidecar', show: (native: boolean) => (native ? 'yes' : 'no') },
    },
  }),
  proxyHoldApplicationUntilProxyStarts: setting({
    config: configAt('proxy', 'holdApplicationUntilProxyStarts'),
    syntax: v.boolean,
    default: true,
    doc: 'Classic sidecars: hold the app containers until Envoy is ready.',
    pod: {
      at: proxyAt('holdApplicationUntilProxyStarts'),
      annotation: 'hold-application-until-proxy-starts',
      accepted: '`true` or `false`: hold the app containers until Envoy is ready (classic sidecars; a native sidecar always holds them)',
      explain: 'hold application until proxy starts',
    },
  }),
  proxyDrainSeconds: setting({
    config: configAt('proxy', 'drainSeconds'),
    syntax: v.integer(0, 3600),
    default: 5,
    doc: "Classic sidecars' preStop drain in seconds; also Envoy's `--drain-time-s`.",
    pod: {
      at: proxyAt('drainSeconds'),
      annotation: 'drain-seconds',
      accepted: "0–3600: how long a classic sidecar keeps serving after the pod starts terminating (0 = no drain); also Envoy's `--drain-time-s`",
      explain: { label: 'proxy drain', show: (seconds: number) => `${seconds}s` },
    },
  }),

  // The proxy as only the config sets it.
  proxyImagePullPolicy: setting({
    config: configAt('proxy', 'imagePullPolicy'),
    syntax: v.oneOf('Always', 'IfNotPresent', 'Never'),
    default: 'IfNotPresent',
    doc: 'Image pull policy of both injected containers.',
    pod: { at: proxyAt('imagePullPolicy'), explain: 'image pull policy' },
  }),
  proxyAccessLog: setting({
    config: configAt('proxy', 'accessLog'),
    syntax: v.boolean,
    default: false,
    doc: 'A stdout access log on the capture listeners.',
    pod: { at: proxyAt('accessLog'), flag: 'access-log', explain: 'access log' },
  }),
  proxyIpv6: setting({
    config: configAt('proxy', 'ipv6'),
    syntax: v.ipv6Mode,
    default: 'auto',
    doc: 'IPv6 capture: the proxy listens on `[::]` too and IPv6 is captured like IPv4 — `auto` when the pod has IPv6 (envoy-init decides in the pod), `true` always (envoy-init fails in a pod without IPv6), `false` never (envoy-init fails if the pod has a global IPv6 address, which would bypass the proxy). See [IPv6](#ipv6).',
    pod: {
      at: proxyAt('traffic', 'ipv6'),
      annotation: 'ipv6',
      accepted: '`auto`, `true` or `false`: capture IPv6 when the pod has it, always, or never (see [IPv6](#ipv6))',
      flag: 'ipv6',
      explain: {
        label: 'IPv6',
        show: (mode: Ipv6Mode) =>
          mode === 'auto' ? 'captured when the pod has IPv6 (auto)' : mode === 'true' ? 'captured (required)' : 'not captured',
      },
    },
  }),
  proxyAdsAddress: setting({
    config: configAt('proxy', 'ads', 'address'),
    syntax: v.optionalHostPort,
    default: null,
    doc: 'The xDS control plane (`host:port`) the proxy gets its listeners and clusters from; none: the static passthrough bootstrap. See [ADS](#ads-an-xds-control-plane).',
    pod: {
      at: proxyAds.address,
      annotation: 'ads-address',
      accepted: '`host:port` of an xDS control plane, or empty for none (the static passthrough bootstrap)',
      flag: 'ads-address',
      explain: { label: 'xDS control plane (ADS)', show: (address: string | null) => address ?? 'none' },
    },
  }),
  proxyAdsTls: setting({
    config: configAt('proxy', 'ads', 'tls'),
    syntax: v.boolean,
    default: false,
    doc: "TLS to the control plane, checked against the proxy image's system CAs (or `proxy.ads.caConfigMap`) and the host name; implied by `caConfigMap` and `clientCertSecret`.",
    pod: { at: proxyAds.tls, flag: 'ads-tls', explain: 'ADS over TLS' },
  }),
  proxyAdsCaConfigMap: setting({
    config: configAt('proxy', 'ads', 'caConfigMap'),
    syntax: v.optionalResourceName,
    default: null,
    doc: "A ConfigMap, published in every namespace with ADS pods, whose key `ca.crt` holds the CAs the control plane's certificate is checked against (instead of the image's system CAs); mounted read-only into `envoy`, and reloaded when it changes. Implies TLS.",
    pod: { at: proxyAds.caConfigMap, flag: 'ads-ca-configmap', explain: { label: 'ADS server CA', show: (name: string | null) => (name === null ? 'system CAs' : `ConfigMap ${name} (ca.crt)`) } },
  }),
  proxyAdsClientCertSecret: setting({
    config: configAt('proxy', 'ads', 'clientCertSecret'),
    syntax: v.optionalResourceName,
    default: null,
    doc: 'A Secret of the pod\'s namespace (type `kubernetes.io/tls`: `tls.crt`, `tls.key`) the proxy presents to the control plane (mTLS); mounted read-only into `envoy`, which reloads it when the kubelet updates the mount (a rotated certificate). Implies TLS.',
    pod: { at: proxyAds.clientCertSecret, flag: 'ads-client-cert-secret', explain: { label: 'ADS client certificate', show: (name: string | null) => (name === null ? 'none' : `Secret ${name} (tls.crt, tls.key)`) } },
  }),
  proxyMounts: setting({
    config: configAt('proxy', 'mounts'),
    syntax: v.proxyMounts,
    default: [],
    doc: 'Read-only Secret and ConfigMap volumes of the proxy: `secret/NAME=/abs/path,configmap/NAME=/abs/path` (see [Proxy mounts](#proxy-mounts)).',
    pod: {
      at: proxyAt('mounts'),
      annotation: 'proxy-mounts',
      accepted: `comma-separated \`secret/NAME=/abs/path\` or \`configmap/NAME=/abs/path\` (at most ${v.MAX_PROXY_MOUNTS}; absolute normalized paths, none under ${v.RESERVED_MOUNT_PATHS.join(', ')} or each other)`,
      explain: 'proxy mounts',
    },
  }),
  // The user's own Envoy configuration (SPEC.md §4a): merged beneath the generated bootstrap by envoy-init.
  proxyBootstrapOverrideConfigMap: setting({
    config: configAt('proxy', 'bootstrapOverrideConfigMap'),
    syntax: v.optionalObjectName,
    default: null,
    doc: "A ConfigMap every injected pod loads from its own namespace as its bootstrap override (key `envoy.yaml`), unless its annotation names another; usually left empty and set per namespace or pod by annotation (see [Your own Envoy configuration](#your-own-envoy-configuration)).",
    pod: {
      at: proxyAt('bootstrapOverrideConfigMap'),
      annotation: 'bootstrap-override',
      accepted:
        "the name of a ConfigMap in the pod's namespace whose key `envoy.yaml` holds a bootstrap fragment, merged beneath the generated bootstrap (empty: none; see [Your own Envoy configuration](#your-own-envoy-configuration))",
      flag: 'bootstrap-override-configmap',
      flagOnlyWhenSet: true,
      explain: { label: 'bootstrap override ConfigMap', show: (name: string | null) => (name === null ? 'none' : `${name} (key envoy.yaml)`) },
    },
  }),
  proxyBootstrapOverride: setting({
    config: configAt('proxy', 'bootstrapOverride'),
    syntax: v.bootstrapFragment,
    default: null,
    doc: "A cluster-wide bootstrap fragment (a YAML mapping: a partial Envoy v3 Bootstrap) merged beneath every pod's own override and the generated bootstrap; checked strictly against Envoy's protos at start; at most 16 KiB as JSON, since it travels in every pod's envoy-init flags (see [Your own Envoy configuration](#your-own-envoy-configuration)).",
    pod: {
      at: proxyAt('bootstrapOverride'),
      flag: 'bootstrap-override',
      flagOnlyWhenSet: true,
      explain: {
        label: 'cluster-wide bootstrap fragment',
        show: (value: JsonObject | null) => (value === null ? 'none' : `${Object.keys(value).join(', ')} (proxy.bootstrapOverride)`),
      },
    },
  }),
  captureMode: setting({
    config: configAt('capture', 'mode'),
    syntax: v.oneOf('init', 'cni'),
    default: 'init',
    doc: "Who installs the pods' traffic capture: `init`, envoy-init as root with NET_ADMIN and NET_RAW; `cni`, the node agent's CNI plugin, envoy-init then unprivileged (passes Pod Security `restricted`) and only checking it. See [CNI mode](#cni-mode).",
    pod: {
      at: proxyAt('captureMode'),
      flag: 'capture-mode',
      explain: {
        label: 'traffic capture installed by',
        show: (mode: CaptureMode) => (mode === 'cni' ? "the node's CNI plugin (cni)" : 'envoy-init (init)'),
      },
    },
  }),
  initImage: setting({
    config: configAt('init', 'image'),
    syntax: v.image,
    default: (version: string) => `${INIT_IMAGE_REPOSITORY}:v${version}`,
    doc: { description: "envoy-init's image: this project's own.", default: `\`${INIT_IMAGE_REPOSITORY}:v<version>\`` },
    pod: { at: proxyAt('initImage'), explain: 'envoy-init image' },
  }),
  initCpu: setting({
    config: configAt('init', 'resources', 'requests', 'cpu'),
    syntax: v.optional(v.cpu),
    default: '10m',
    doc: "envoy-init's CPU request (empty: none).",
    pod: { at: proxyAt('initResources', 'requests', 'cpu'), explain: quantity('envoy-init CPU request', v.cpu) },
  }),
  initMemory: setting({
    config: configAt('init', 'resources', 'requests', 'memory'),
    syntax: v.optional(v.memory),
    default: '32Mi',
    doc: "envoy-init's memory request (empty: none).",
    pod: { at: proxyAt('initResources', 'requests', 'memory'), explain: quantity('envoy-init memory request', v.memory) },
  }),
  initCpuLimit: setting({
    config: configAt('init', 'resources', 'limits', 'cpu'),
    syntax: v.optional(v.cpu),
    default: '500m',
    doc: "envoy-init's CPU limit (empty: none).",
    pod: { at: proxyAt('initResources', 'limits', 'cpu'), explain: quantity('envoy-init CPU limit', v.cpu) },
  }),
  initMemoryLimit: setting({
    config: configAt('init', 'resources', 'limits', 'memory'),
    syntax: v.optional(v.memory),
    default: '128Mi',
    doc: "envoy-init's memory limit (empty: none).",
    pod: { at: proxyAt('initResources', 'limits', 'memory'), explain: quantity('envoy-init memory limit', v.memory) },
  }),
} as const satisfies Record<string, Setting>;

/** Every setting, in table order. */
export const SETTINGS: SettingsTable = Object.values(SETTING);

/** What a pod's effective proxy config holds that no setting changes, with envoy-init's flag for each. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export interface FixedValue<T = any> {
  readonly flag: string;
  readonly at: PathLens<EffectiveProxyConfig, T>;
  readonly syntax: ValueType<T>;
  readonly value: T;
  readonly doc: string;
}

const id = v.integer(0, 2 ** 31 - 1);
const fixed = <T>(value: FixedValue<T>): FixedValue => value;
/** The proxy's identity and ports (SPEC.md §2): fixed, but envoy-init still takes them as flags. */
export const FIXED_VALUES: readonly FixedValue[] = [
  fixed({ flag: 'proxy-uid', at: proxyAt('traffic', 'proxyUid'), syntax: id, value: PROXY_UID, doc: 'Traffic of this UID is never captured.' }),
  fixed({ flag: 'proxy-gid', at: proxyAt('traffic', 'proxyGid'), syntax: id, value: PROXY_GID, doc: 'Traffic of this GID is never captured.' }),
  fixed({
    flag: 'inbound-capture-port',
    at: proxyAt('traffic', 'inboundCapturePort'),
    syntax: v.port,
    value: PORTS.inboundCapture,
    doc: 'Where inbound TCP is redirected.',
  }),
  fixed({
    flag: 'outbound-capture-port',
    at: proxyAt('traffic', 'outboundCapturePort'),
    syntax: v.port,
    value: PORTS.outboundCapture,
    doc: 'Where outbound TCP is redirected.',
  }),
  fixed({
    flag: 'proxy-ports',
    at: proxyAt('traffic', 'proxyPorts'),
    syntax: v.portList,
    value: PROXY_PORTS,
    doc: "The proxy's own ports: never captured inbound.",
  }),
];

/**
 * Returns what `derive` makes of a table, computed once per table: the lists below are read on every
 * admission, and a table (like everything the core is given) is never changed once made.
 */
export function perTable<T>(derive: (table: SettingsTable) => T): (table: SettingsTable) => T {
  const cache = new WeakMap<SettingsTable, T>();
  return (table) => {
    let value = cache.get(table);
    if (value === undefined) {
      value = derive(table);
      cache.set(table, value);
    }
    return value;
  };
}

const podSettingsOf = perTable((table) => table.filter((s) => s.pod !== undefined));
const annotationNamesOf = perTable((table) => table.flatMap((s) => (s.pod?.annotation === undefined ? [] : [s.pod.annotation])));
const knownAnnotationsOf = perTable((table) => [INJECT_ANNOTATION, STATUS_ANNOTATION, ...annotationNamesOf(table).map(annotationKey)]);

/** The pod settings: those with a `pod` part. */
export function podSettings(table: SettingsTable = SETTINGS): readonly Setting[] {
  return podSettingsOf(table);
}

/** The names (under the domain) of the settings' annotations, in table order. */
export function annotationNames(table: SettingsTable = SETTINGS): readonly string[] {
  return annotationNamesOf(table);
}

/** Every annotation key under the domain the injector understands (anything else is a likely typo). */
export function knownAnnotations(table: SettingsTable = SETTINGS): readonly string[] {
  return knownAnnotationsOf(table);
}

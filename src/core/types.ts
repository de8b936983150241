// Types shared by the pure injection core, the transport and the CLI.
import type { V1Container, V1Volume } from '@kubernetes/client-node';

/** A JSON value as it arrives on the wire; the core reads pods as plain JSON, never as class instances. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** `*` means "all"; otherwise an explicit list (possibly empty, meaning "none"). */
export type AllOr<T> = '*' | readonly T[];

export type LogLevel = 'trace' | 'debug' | 'info' | 'warning' | 'error' | 'critical' | 'off';
export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warning', 'error', 'critical', 'off'];

export interface ResourceList {
  readonly cpu?: string;
  readonly memory?: string;
}

export interface ProxyResources {
  readonly requests: ResourceList;
  readonly limits: ResourceList;
}

/** How the proxy authenticates the control plane, and itself to it. */
export interface AdsTls {
  /** Whether the connection to the control plane uses TLS (implied by a CA or a client certificate). */
  readonly tls: boolean;
  /** ConfigMap of the pod's namespace whose `ca.crt` the control plane's certificate is checked against; null: the image's system CAs. */
  readonly caConfigMap: string | null;
  /** Secret of the pod's namespace whose `tls.crt`/`tls.key` the proxy presents (mTLS), reloaded on rotation; null: none. */
  readonly clientCertSecret: string | null;
}

/** Where the proxy gets its listeners and clusters beyond the static bootstrap. */
export interface AdsConfig extends AdsTls {
  /** `host:port` of the xDS control plane (gRPC over HTTP/2). */
  readonly address: string;
}

/** A read-only volume of the proxy's (`proxy-mounts`): a Secret or ConfigMap of the pod's namespace at an absolute path. */
export interface ProxyMount {
  readonly kind: 'secret' | 'configmap';
  readonly name: string;
  readonly path: string;
}

/** What the traffic capture of one pod redirects; rendered as `envoy-init` flags. */
export interface TrafficPolicy {
  readonly proxyUid: number;
  readonly proxyGid: number;
  readonly inboundCapturePort: number;
  readonly outboundCapturePort: number;
  /** Ports of the proxy itself: never redirected inbound. */
  readonly proxyPorts: readonly number[];
  readonly includeInboundPorts: AllOr<number>;
  readonly excludeInboundPorts: readonly number[];
  readonly excludeOutboundPorts: readonly number[];
  readonly includeOutboundIpRanges: AllOr<string>;
  readonly excludeOutboundIpRanges: readonly string[];
  /** Whether IPv6 is captured too and the proxy listens on `::`: `auto` when the pod has IPv6 (decided in the pod). */
  readonly ipv6: Ipv6Mode;
}

/**
 * IPv6 capture: `auto` when the pod has IPv6 (envoy-init decides in the pod, where the kernel is
 * known), `true` always (envoy-init fails in a pod without IPv6), `false` never (envoy-init fails
 * when the pod has a global IPv6 address, which would carry traffic past the proxy).
 */
export type Ipv6Mode = 'auto' | 'true' | 'false';

/** Settings of the proxy that a pod can override by annotation (SPEC.md §5). */
export interface ProxySettings {
  readonly image: string;
  readonly resources: ProxyResources;
  readonly logLevel: LogLevel;
  /** Envoy worker threads; 0 means one per CPU of the container's cpuset (--cpuset-threads). */
  readonly concurrency: number;
  /** Whether the proxy runs as a native sidecar (an init container with restartPolicy Always). */
  readonly nativeSidecar: boolean;
  /** Classic sidecar only: hold the app containers until the proxy is ready. */
  readonly holdApplicationUntilProxyStarts: boolean;
  /** Seconds the proxy keeps serving after termination starts, so in-flight requests finish. */
  readonly drainSeconds: number;
}

/** The fully resolved proxy configuration of one pod: config defaults plus its overrides. */
export interface EffectiveProxyConfig extends ProxySettings {
  /** Who installs the pod's capture: envoy-init itself (`init`) or the node's CNI plugin (`cni`). */
  readonly captureMode: CaptureMode;
  readonly initImage: string;
  readonly initResources: ProxyResources;
  readonly imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  readonly accessLog: boolean;
  readonly ads: AdsConfig | null;
  /** Read-only Secret/ConfigMap volumes of the proxy's (`proxy-mounts`). */
  readonly mounts: readonly ProxyMount[];
  readonly traffic: TrafficPolicy;
  /** The ConfigMap of the pod's namespace (key `envoy.yaml`) whose bootstrap fragment envoy-init merges, or null. */
  readonly bootstrapOverrideConfigMap: string | null;
  /** The cluster-wide bootstrap fragment (`proxy.bootstrapOverride`), merged beneath the pod's, or null. */
  readonly bootstrapOverride: JsonObject | null;
}

/**
 * Who installs a pod's traffic capture (SPEC.md §4c): `init`, envoy-init as root with NET_ADMIN and
 * NET_RAW; `cni`, the node agent's chained CNI plugin before any container runs, envoy-init then
 * unprivileged and only checking it.
 */
export type CaptureMode = 'init' | 'cni';

/** `auto` asks the API server its version at start (≥ 1.29 → native). */
export type NativeSidecarMode = 'auto' | 'true' | 'false';

/** The validated, frozen configuration the whole process runs with (see config.ts). */
export interface InjectorConfig {
  readonly server: {
    readonly host: string;
    readonly port: number;
    /** Largest accepted request body in bytes. */
    readonly bodyLimitBytes: number;
    /** Time limit for receiving a whole request, in milliseconds. */
    readonly requestTimeoutMs: number;
    /** Admissions processed at once (counted once the body is complete); beyond this the webhook answers 503 quickly. */
    readonly maxConcurrentAdmissions: number;
    /** Requests in progress (headers received, not answered) from one remote address; beyond it 503. */
    readonly maxRequestsPerPeer: number;
    /** Time for a request's body to arrive after its headers, in milliseconds; beyond it 408. */
    readonly bodyTimeoutMs: number;
    /** Time allowed to finish in-flight requests after SIGTERM, in milliseconds. */
    readonly shutdownGraceMs: number;
  };
  readonly tls: {
    readonly mode: 'local' | 'files' | 'secret';
    /** Directory for generated (local) or mounted (files) certificate material. */
    readonly certDir: string;
    /** Extra DNS names / IPs of the serving certificate. */
    readonly dnsNames: readonly string[];
    readonly serviceName: string;
    readonly secretName: string;
    readonly webhookConfigName: string;
    /** Renew the serving certificate this many days before it expires. */
    readonly renewBeforeDays: number;
    /** Seconds between checks of the Secret and caBundle (secret) or re-reads of the files (files). */
    readonly resyncSeconds: number;
  };
  /** Namespace the injector itself runs in (never injected). */
  readonly namespace: string;
  readonly excludedNamespaces: readonly string[];
  readonly logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
  readonly nativeSidecar: NativeSidecarMode;
  readonly proxy: Omit<ProxySettings, 'nativeSidecar'> & {
    readonly imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
    readonly accessLog: boolean;
    /** The control plane: an address (null: none, unless a namespace or pod names one) and how to trust it. */
    readonly ads: AdsTls & { readonly address: string | null };
    readonly mounts: readonly ProxyMount[];
    readonly ipv6: Ipv6Mode;
    readonly bootstrapOverrideConfigMap: string | null;
    readonly bootstrapOverride: JsonObject | null;
  };
  readonly capture: {
    readonly mode: CaptureMode;
  };
  readonly init: {
    readonly image: string;
    readonly resources: ProxyResources;
  };
  readonly traffic: {
    readonly includeInboundPorts: AllOr<number>;
    readonly excludeInboundPorts: readonly number[];
    readonly excludeOutboundPorts: readonly number[];
    readonly includeOutboundIpRanges: AllOr<string>;
    readonly excludeOutboundIpRanges: readonly string[];
  };
}

/** Facts about the running environment the core needs but must not look up itself. */
export interface InjectorRuntime {
  /** Version of envoy-injector, written into the status annotation. */
  readonly version: string;
  /** Whether `nativeSidecar: auto` resolved to native sidecars (cluster ≥ 1.29). */
  readonly nativeSidecarSupported: boolean;
  /**
   * Whether the API server itself stores native sidecars (Kubernetes ≥ 1.29), when `nativeSidecar:
   * auto` read its version; unset otherwise. An older one drops `restartPolicy` from the patch and
   * then refuses the pod, whose envoy has become a plain init container with probes.
   */
  readonly apiServerNativeSidecars?: boolean;
}

/** What the admission request (or the CLI) tells about the object besides the object itself (see context.ts). */
export interface AdmissionContext {
  /** Kind of the object, e.g. `Pod`. */
  readonly kind: string;
  /** Admission operation, e.g. `CREATE`. */
  readonly operation: string;
  /** Namespace the pod is created in. */
  readonly namespace: string;
  /** Subresource, if any (e.g. `ephemeralcontainers`): such requests are never injected. */
  readonly subResource?: string;
  /**
   * Labels of the namespace when known (CLI `explain --namespace-labels`); the webhook leaves this
   * out because the API server only calls it for namespaces its selector matched.
   */
  readonly namespaceLabels?: Readonly<Record<string, string>>;
  /**
   * Annotations of the namespace when known (SPEC.md §4b: its `envoy-injector.io/<setting>` values
   * are the defaults of its pods). The webhook does not know them yet; the CLI takes them by flag.
   */
  readonly namespaceAnnotations?: Readonly<Record<string, string>>;
  /**
   * Set when the namespace's annotations should be known but could not be read (the webhook's cache
   * missed it and the read failed): the pod gets the config's defaults, with a warning saying so.
   */
  readonly namespaceAnnotationsUnknown?: boolean;
  /** Kind of the workload owning the pod template, when the CLI injects one (e.g. `CronJob`). */
  readonly workloadKind?: string;
}

export type { V1Container as Container, V1Volume as Volume };

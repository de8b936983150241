// Every name, port and key of the product contract (SPEC.md §2), spelled once.

/** Prefix shared by every label and annotation the injector reads or writes. */
export const DOMAIN = 'envoy-injector.io';

/** Namespace (and pod) label that enables injection: `enabled` turns it on, `disabled` off. */
export const INJECT_LABEL = `${DOMAIN}/inject`;
export const INJECT_LABEL_ENABLED = 'enabled';
export const INJECT_LABEL_DISABLED = 'disabled';

/** Pod annotation that opts a single pod out (`"false"`) or explicitly in (`"true"`). */
export const INJECT_ANNOTATION = `${DOMAIN}/inject`;

/** Annotation written on injected pods: JSON describing what was added (see InjectionStatus). */
export const STATUS_ANNOTATION = `${DOMAIN}/status`;

/** Annotation kubectl reads to pick the container for `logs`/`exec` when none is named. */
export const KUBECTL_DEFAULT_CONTAINER_ANNOTATION = 'kubectl.kubernetes.io/default-container';

// The per-pod override annotations (SPEC.md §5) are declared with their settings in core/settings.ts.

export const INIT_CONTAINER_NAME = 'envoy-init';
export const SIDECAR_CONTAINER_NAME = 'envoy';
/** emptyDir mounted at /run in envoy-init so iptables can take the xtables lock on a read-only root. */
export const XTABLES_LOCK_VOLUME_NAME = 'envoy-init-xtables-lock';

/** emptyDir envoy-init renders the bootstrap (and the classic sidecar's hook scripts) into; envoy mounts it read-only. */
export const BOOTSTRAP_VOLUME_NAME = 'envoy-bootstrap';
/** Where both injected containers mount the bootstrap volume. */
export const BOOTSTRAP_DIR = '/etc/envoy-bootstrap';
/** The files envoy-init writes into BOOTSTRAP_DIR. */
export const BOOTSTRAP_FILES = {
  /** Envoy's bootstrap (`envoy -c`). */
  bootstrap: 'bootstrap.json',
  /** The classic sidecar's postStart hook: wait until Envoy is ready. */
  hold: 'hold.sh',
  /** The classic sidecar's preStop hook: drain, then wait the seconds given as its argument. */
  drain: 'drain.sh',
} as const;

/** downwardAPI volume of envoy-init holding the pod's labels (the bootstrap's node metadata). */
export const PODINFO_VOLUME_NAME = 'envoy-podinfo';
/** Where envoy-init mounts it, and the file of `metadata.labels` in it. */
export const PODINFO_DIR = '/etc/envoy-podinfo';
export const PODINFO_LABELS_FILE = 'labels';

/** Where `envoy` mounts what ADS needs: the control plane's CA (`ca/`) and its client certificate (`client-cert/`). */
export const ADS_DIR = '/etc/envoy-ads';
export const ADS_CA_DIR = `${ADS_DIR}/ca`;
export const ADS_CLIENT_CERT_DIR = `${ADS_DIR}/client-cert`;
/** The volumes of the ADS CA ConfigMap and client certificate Secret. */
export const ADS_CA_VOLUME_NAME = 'envoy-ads-ca';
export const ADS_CLIENT_CERT_VOLUME_NAME = 'envoy-ads-client-cert';
/** Prefix of the volumes of `proxy-mounts`. */
export const PROXY_MOUNT_VOLUME_PREFIX = 'envoy-mount-';

/**
 * configMap volume of the pod's bootstrap override (SPEC.md §4a: the ConfigMap its
 * `bootstrap-override` annotation names), mounted read-only into envoy-init only, which merges it.
 */
export const OVERRIDE_VOLUME_NAME = 'envoy-bootstrap-override';
/** Where envoy-init mounts it, and the ConfigMap key (the file in it) holding the fragment. */
export const OVERRIDE_DIR = '/etc/envoy-override';
export const OVERRIDE_KEY = 'envoy.yaml';

/** Every volume the injection adds: a pod of its own with one of these names cannot be injected. */
export const INJECTED_VOLUME_NAMES: readonly string[] = [XTABLES_LOCK_VOLUME_NAME, BOOTSTRAP_VOLUME_NAME, PODINFO_VOLUME_NAME, OVERRIDE_VOLUME_NAME];

/**
 * Environment variable in which injectors before the bootstrap was rendered in the pod passed it to
 * Envoy (`--config-yaml $(ENVOY_BOOTSTRAP)`); `bootstrap -f` still reads it from pods they injected.
 */
export const LEGACY_BOOTSTRAP_ENV = 'ENVOY_BOOTSTRAP';

/** UID and GID the proxy runs as; traffic from this UID/GID is never redirected. */
export const PROXY_UID = 1337;
export const PROXY_GID = 1337;
/**
 * UID and GID of envoy-init in CNI mode: non-root, and not the proxy's (whose traffic the capture
 * lets through, so its check of the capture could not fail).
 */
export const INIT_UNPRIVILEGED_UID = 1338;

/** Envoy's ports (SPEC.md §2). */
export const PORTS = {
  admin: 15000,
  outboundCapture: 15001,
  inboundCapture: 15006,
  readiness: 15021,
  prometheus: 15090,
} as const;

/** Ports the proxy owns: never redirected inbound and never declared by app containers. */
export const PROXY_PORTS: readonly number[] = [
  PORTS.admin,
  PORTS.outboundCapture,
  PORTS.inboundCapture,
  PORTS.readiness,
  PORTS.prometheus,
];

export const READINESS_PATH = '/ready';
export const PROMETHEUS_PATH = '/stats/prometheus';

/**
 * Source addresses of Envoy's inbound passthrough connections. Envoy binds its upstream side of
 * inbound traffic to these so the iptables rules can tell it apart from the app calling its own
 * pod IP (which must be captured) and let it reach the app without looping back into the proxy.
 */
export const INBOUND_PASSTHROUGH_SOURCE_V4 = '127.0.0.6';
export const INBOUND_PASSTHROUGH_SOURCE_V6 = '::6';

/** Prefix of every iptables chain the init container creates. */
export const CHAIN_PREFIX = 'ENVOY_';

/** Default webhook port and paths (SPEC.md §2). */
export const WEBHOOK_PORT = 8443;
export const PATHS = {
  mutate: '/mutate',
  healthz: '/healthz',
  readyz: '/readyz',
  metrics: '/metrics',
} as const;

/** Containers of other meshes: a pod carrying one already has a proxy capturing its traffic. */
export const OTHER_MESH_CONTAINERS: readonly string[] = [
  'istio-proxy',
  'istio-init',
  'linkerd-proxy',
  'linkerd-init',
  'kuma-sidecar',
  'kuma-init',
  'consul-dataplane',
  'envoy-sidecar',
];

/**
 * Annotation on the Secret of `tls.mode: secret`: until when the CAs carried over from before a CA
 * reset (the Secret deleted or unusable) stay in its trust bundle, so replicas still serving a
 * certificate of the old CA stay trusted until they switch; after it they are dropped.
 */
export const CARRIED_CAS_UNTIL_ANNOTATION = `${DOMAIN}/carried-cas-until`;

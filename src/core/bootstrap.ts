// The Envoy v3 bootstrap generated for one pod.
//
// It reaches Envoy without any extra API object and without travelling in the pod spec: envoy-init
// renders it inside the pod (SPEC.md §4) from its flags — the pod's proxy config and what only the
// admission knows (init-flags.ts) — and from what only the running pod knows: its name, namespace,
// IPs, node and service account (downward-API environment), its labels (a downwardAPI volume) and
// whether it has IPv6. It writes it into the `envoy-bootstrap` emptyDir, and Envoy starts with
// `-c <that file>`. `envoy-injector bootstrap -f POD` renders the same with what the pod object
// tells. Pure: everything comes in as values.
import { isIP } from 'node:net';
import {
  ADS_CA_DIR,
  ADS_CLIENT_CERT_DIR,
  BOOTSTRAP_DIR,
  INBOUND_PASSTHROUGH_SOURCE_V4,
  INBOUND_PASSTHROUGH_SOURCE_V6,
  PORTS,
  PROMETHEUS_PATH,
  READINESS_PATH,
} from '../constants.ts';
import type { BootstrapRequest, InitInputs } from './init-flags.ts';
import type { AdsConfig, EffectiveProxyConfig, JsonObject } from './types.ts';
import { parseHostPort } from './values.ts';

/** Downward-API env vars of envoy-init the bootstrap is rendered from, with their field paths. */
export const DOWNWARD_ENV = [
  { name: 'POD_NAME', fieldPath: 'metadata.name', field: 'name' },
  { name: 'POD_NAMESPACE', fieldPath: 'metadata.namespace', field: 'namespace' },
  { name: 'INSTANCE_IPS', fieldPath: 'status.podIPs', field: 'instanceIps' },
  { name: 'NODE_NAME', fieldPath: 'spec.nodeName', field: 'nodeName' },
  { name: 'SERVICE_ACCOUNT', fieldPath: 'spec.serviceAccountName', field: 'serviceAccount' },
] as const;

/** What the running pod tells about itself: the downward-API values envoy-init reads. */
export interface PodIdentity {
  readonly name: string;
  readonly namespace: string;
  /** The pod's IPs, comma-separated (the downward API's `status.podIPs`). */
  readonly instanceIps: string;
  readonly nodeName: string;
  readonly serviceAccount: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** Everything the bootstrap is made of. */
export interface BootstrapInput {
  readonly proxy: EffectiveProxyConfig;
  readonly pod: PodIdentity;
  /** Name of the workload the pod belongs to (a label or its generateName), for node.cluster. */
  readonly workloadName: string;
  /** The version of the code that renders it (envoy-init's, in the pod). */
  readonly injectorVersion: string;
  readonly configHash: string;
  /** Whether the proxy listens on `::` and passes IPv6 through: the pod's IPv6, as envoy-init decided it. */
  readonly ipv6: boolean;
  /** The directory of the SDS files beside the bootstrap (envoy-init's --bootstrap-dir); the injected one by default. */
  readonly sdsDir?: string;
}

/** The names of the injector's listeners. */
export const LISTENERS = {
  outboundCapture: 'outbound_capture',
  inboundCapture: 'inbound_capture',
  readiness: 'readiness',
  prometheus: 'prometheus',
} as const;

/** The names of the injector's clusters. */
export const CLUSTERS = {
  outboundPassthrough: 'outbound_passthrough',
  inboundPassthrough: 'inbound_passthrough',
  blackhole: 'blackhole',
  admin: 'envoy_admin',
  xds: 'xds_control_plane',
} as const;

const TYPES = {
  originalDst: 'type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst',
  tcpProxy: 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
  hcm: 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  router: 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
  stdoutLog: 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog',
  httpOptions: 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
  upstreamTls: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
  secret: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
} as const;

const socketAddress = (address: string, port: number): JsonObject => ({
  socket_address: { address, port_value: port },
});

/** A listener on every address of the pod: IPv4, plus IPv6 when the proxy captures IPv6. */
function listenerAddresses(port: number, ipv6: boolean): JsonObject {
  return {
    address: socketAddress('0.0.0.0', port),
    // A separate IPv6-only socket (ipv4_compat off) so original_dst sees native IPv4 addresses.
    ...(ipv6 ? { additional_addresses: [{ address: socketAddress('::', port) }] } : {}),
  };
}

function accessLog(proxy: EffectiveProxyConfig): JsonObject {
  return proxy.accessLog
    ? { access_log: [{ name: 'envoy.access_loggers.stdout', typed_config: { '@type': TYPES.stdoutLog } }] }
    : {};
}

function tcpProxyChain(statPrefix: string, cluster: string, proxy: EffectiveProxyConfig, match?: JsonObject): JsonObject {
  return {
    ...(match === undefined ? {} : { filter_chain_match: match }),
    filters: [
      {
        name: 'envoy.filters.network.tcp_proxy',
        typed_config: { '@type': TYPES.tcpProxy, stat_prefix: statPrefix, cluster, ...accessLog(proxy) },
      },
    ],
  };
}

/**
 * A capture listener: the original_dst listener filter recovers where the redirected connection
 * was going, and TCP passthrough (the default filter chain) forwards it there.
 *
 * A connection that reaches the capture port without being redirected would have the capture
 * port as its "original" destination and make the proxy connect to itself forever, so it goes to
 * the blackhole. Inbound, any connection to 15006 is such a connection. Outbound, only one
 * addressed to this pod itself is (its source is then the destination's own IP, or loopback):
 * the app may well call port 15001 of another host.
 */
function captureListener(
  name: string,
  port: number,
  direction: 'INBOUND' | 'OUTBOUND',
  cluster: string,
  proxy: EffectiveProxyConfig,
  ipv6: boolean,
): JsonObject {
  const loop: JsonObject = direction === 'INBOUND' ? { destination_port: port } : { destination_port: port, source_type: 'SAME_IP_OR_LOOPBACK' };
  return {
    name,
    ...listenerAddresses(port, ipv6),
    traffic_direction: direction,
    listener_filters: [{ name: 'envoy.filters.listener.original_dst', typed_config: { '@type': TYPES.originalDst } }],
    // Filter chain matching keeps only the most specific chains at each step and has no fallback
    // to less specific ones, so passthrough is the default chain, used when no chain matches.
    filter_chains: [tcpProxyChain(`${name}_loop`, CLUSTERS.blackhole, proxy, loop)],
    default_filter_chain: tcpProxyChain(name, cluster, proxy),
  };
}

/** A plain-HTTP listener exposing one path of the admin interface (which stays on 127.0.0.1). */
function adminPathListener(name: string, port: number, path: string, ipv6: boolean): JsonObject {
  return {
    name,
    ...listenerAddresses(port, ipv6),
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': TYPES.hcm,
              stat_prefix: name,
              codec_type: 'AUTO',
              route_config: {
                name,
                virtual_hosts: [
                  {
                    name,
                    domains: ['*'],
                    routes: [{ match: { path }, route: { cluster: CLUSTERS.admin, timeout: '5s' } }],
                  },
                ],
              },
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': TYPES.router } }],
            },
          },
        ],
      },
    ],
  };
}

/** The largest value of Envoy's UInt32 circuit-breaker thresholds: no limit. */
const UNLIMITED = 4294967295;

/**
 * A passthrough cluster: the connection goes wherever it was going (CLUSTER_PROVIDED takes the
 * address original_dst recovered). Envoy's default circuit breakers (1024 connections and
 * requests per cluster) would cap everything the app opens, so they are lifted, as without a proxy.
 */
function originalDstCluster(name: string, extra: JsonObject = {}): JsonObject {
  return {
    name,
    type: 'ORIGINAL_DST',
    lb_policy: 'CLUSTER_PROVIDED',
    connect_timeout: '10s',
    circuit_breakers: {
      thresholds: [
        { priority: 'DEFAULT', max_connections: UNLIMITED, max_pending_requests: UNLIMITED, max_requests: UNLIMITED, max_retries: UNLIMITED },
      ],
    },
    ...extra,
  };
}

function staticCluster(name: string, host: string, port: number): JsonObject {
  return {
    name,
    type: isIP(host) === 0 ? 'STRICT_DNS' : 'STATIC',
    connect_timeout: '5s',
    load_assignment: {
      cluster_name: name,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: socketAddress(host, port) } }] }],
    },
  };
}

/**
 * Inbound passthrough connects to the app from 127.0.0.6 (::6 for IPv6), which the iptables
 * rules let through without redirecting it into the proxy again. Envoy picks the source of the
 * destination's family. 127.0.0.6 is local (lo holds 127.0.0.0/8); ::6 must be assigned to lo
 * (`ip -6 addr add ::6/128 dev lo`, as Istio's and Kuma's init containers do): the app's replies
 * to ::6 are routed by the kernel, and without a local ::6 they would leave through the pod's
 * default route. So no freebind: if ::6 is missing, the bind fails at once instead of every IPv6
 * inbound connection hanging.
 */
function inboundPassthroughCluster(ipv6: boolean): JsonObject {
  return originalDstCluster(CLUSTERS.inboundPassthrough, {
    upstream_bind_config: {
      source_address: { address: INBOUND_PASSTHROUGH_SOURCE_V4, port_value: 0 },
      ...(ipv6 ? { extra_source_addresses: [{ address: { address: INBOUND_PASSTHROUGH_SOURCE_V6, port_value: 0 } }] } : {}),
    },
  });
}

/**
 * Returns a host as a certificate names it and as SNI carries it: an IPv6 literal in its canonical
 * form (RFC 5952: `FD00:0:0::20` is `fd00::20`, which is how Envoy compares IP SANs as text), a DNS
 * name in lower case without its trailing dot (certificates never carry the root's dot).
 */
export function canonicalHost(host: string): string {
  if (isIP(host) === 6) return new URL(`http://[${host}]/`).hostname.slice(1, -1);
  if (isIP(host) === 4) return host;
  return host.toLowerCase().replace(/\.$/, '');
}

/** Whether the proxy reaches the control plane over TLS: asked for, or implied by a CA or client certificate. */
export function adsUsesTls(ads: AdsConfig): boolean {
  return ads.tls || ads.caConfigMap !== null || ads.clientCertSecret !== null;
}

/** The file-based SDS resources of the ADS connection: envoy-init writes them beside the bootstrap. */
export const ADS_SDS = {
  ca: { secret: 'ads_ca', file: 'ads-ca.sds.json' },
  clientCert: { secret: 'ads_client_cert', file: 'ads-client-cert.sds.json' },
} as const;

const sdsFromFile = (name: string, file: string, dir: string): JsonObject => ({
  name,
  sds_config: { path_config_source: { path: `${dir}/${file}` }, resource_api_version: 'V3' },
});

/**
 * The SDS files of the ADS connection (none without TLS material from the cluster). Each holds one
 * Secret whose files are the kubelet's projection of a ConfigMap or Secret: `watched_directory` is
 * the mount itself, where the kubelet's atomic update renames `..data` — so Envoy re-reads the files
 * when the CA is updated or the client certificate rotated, without a restart.
 */
export function adsSdsResources(proxy: EffectiveProxyConfig): { readonly file: string; readonly content: JsonObject }[] {
  const ads = proxy.ads;
  if (ads === null) return [];
  const secret = (name: string, body: JsonObject): JsonObject => ({ resources: [{ '@type': TYPES.secret, name, ...body }] });
  return [
    ...(ads.caConfigMap === null
      ? []
      : [
          {
            file: ADS_SDS.ca.file,
            content: secret(ADS_SDS.ca.secret, {
              validation_context: { trusted_ca: { filename: `${ADS_CA_DIR}/ca.crt` }, watched_directory: { path: ADS_CA_DIR } },
            }),
          },
        ]),
    ...(ads.clientCertSecret === null
      ? []
      : [
          {
            file: ADS_SDS.clientCert.file,
            content: secret(ADS_SDS.clientCert.secret, {
              tls_certificate: {
                certificate_chain: { filename: `${ADS_CLIENT_CERT_DIR}/tls.crt` },
                private_key: { filename: `${ADS_CLIENT_CERT_DIR}/tls.key` },
                watched_directory: { path: ADS_CLIENT_CERT_DIR },
              },
            }),
          },
        ]),
  ];
}

/** The TLS transport socket of the ADS cluster: the server checked by CA and name, the client's certificate when given. */
function adsTransportSocket(ads: AdsConfig, host: string, sdsDir: string): JsonObject {
  const name = canonicalHost(host);
  const ip = isIP(name) !== 0;
  // A trusted CA alone would accept any certificate it signed: the server's certificate must also
  // name the control plane's host, as the certificate writes it.
  const sans = [{ san_type: ip ? 'IP_ADDRESS' : 'DNS', matcher: { exact: name } }];
  const validation: JsonObject =
    ads.caConfigMap === null
      ? { validation_context: { trusted_ca: { filename: SYSTEM_CA_FILE }, match_typed_subject_alt_names: sans } }
      : {
          combined_validation_context: {
            default_validation_context: { match_typed_subject_alt_names: sans },
            validation_context_sds_secret_config: sdsFromFile(ADS_SDS.ca.secret, ADS_SDS.ca.file, sdsDir),
          },
        };
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': TYPES.upstreamTls,
      // SNI carries a host name only (RFC 6066): never an IP literal.
      ...(ip ? {} : { sni: name }),
      common_tls_context: {
        ...validation,
        ...(ads.clientCertSecret === null
          ? {}
          : { tls_certificate_sds_secret_configs: [sdsFromFile(ADS_SDS.clientCert.secret, ADS_SDS.clientCert.file, sdsDir)] }),
      },
    },
  };
}

/** The proxy image's system CA bundle (envoyproxy/envoy is Debian/Ubuntu based). */
const SYSTEM_CA_FILE = '/etc/ssl/certs/ca-certificates.crt';

function xdsCluster(proxy: EffectiveProxyConfig, sdsDir: string): JsonObject[] {
  if (proxy.ads === null) return [];
  const target = parseHostPort(proxy.ads.address);
  // The config loader validated the address; an invalid one here is a programming error.
  if (!target.ok) throw new Error(`invalid ADS address ${proxy.ads.address}`);
  const { host, port } = target.value;
  return [
    {
      // The address as given: a trailing dot keeps the resolver from trying the search domains.
      ...staticCluster(CLUSTERS.xds, isIP(host) === 0 ? host : canonicalHost(host), port),
      // One long-lived gRPC stream: keepalives notice a control plane that vanished without a FIN.
      upstream_connection_options: { tcp_keepalive: {} },
      typed_extension_protocol_options: {
        'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
          '@type': TYPES.httpOptions,
          explicit_http_config: { http2_protocol_options: {} },
        },
      },
      ...(adsUsesTls(proxy.ads) ? { transport_socket: adsTransportSocket(proxy.ads, host, sdsDir) } : {}),
    },
  ];
}

/**
 * An xDS source of the ADS stream. `initial_fetch_timeout: 0s`: Envoy stays initializing — /ready
 * answers 503, so a native sidecar's startup probe (and a classic sidecar's hold) keep the app from
 * starting — until the control plane's first listeners and clusters arrived, rather than giving up
 * after the default 15 s and turning ready with no capture listeners (every app connection refused).
 */
const adsSource = (): JsonObject => ({ ads: {}, resource_api_version: 'V3', initial_fetch_timeout: '0s' });

/** Returns the v3 bootstrap (as ProtoJSON) the pod's proxy starts with. */
export function buildBootstrap(input: BootstrapInput): JsonObject {
  const { proxy, pod, ipv6 } = input;
  const ads = proxy.ads !== null;
  // With ADS the control plane owns the capture listeners and their clusters; the bootstrap keeps
  // only what must work before it answers: admin, readiness, metrics and the way to reach it.
  const captureListeners = ads
    ? []
    : [
        captureListener(LISTENERS.outboundCapture, PORTS.outboundCapture, 'OUTBOUND', CLUSTERS.outboundPassthrough, proxy, ipv6),
        captureListener(LISTENERS.inboundCapture, PORTS.inboundCapture, 'INBOUND', CLUSTERS.inboundPassthrough, proxy, ipv6),
      ];
  const passthroughClusters = ads
    ? []
    : [
        originalDstCluster(CLUSTERS.outboundPassthrough),
        inboundPassthroughCluster(ipv6),
        // No endpoints: whatever is sent here is refused.
        { name: CLUSTERS.blackhole, type: 'STATIC', connect_timeout: '1s', load_assignment: { cluster_name: CLUSTERS.blackhole } },
      ];
  return {
    node: {
      id: `${pod.name}.${pod.namespace}`,
      cluster: `${input.workloadName}.${pod.namespace}`,
      metadata: {
        POD_NAME: pod.name,
        NAMESPACE: pod.namespace,
        INSTANCE_IPS: pod.instanceIps,
        NODE_NAME: pod.nodeName,
        SERVICE_ACCOUNT: pod.serviceAccount,
        WORKLOAD_NAME: input.workloadName,
        LABELS: { ...pod.labels },
        INJECTOR_VERSION: input.injectorVersion,
        CONFIG_HASH: input.configHash,
        INBOUND_CAPTURE_PORT: proxy.traffic.inboundCapturePort,
        OUTBOUND_CAPTURE_PORT: proxy.traffic.outboundCapturePort,
        INBOUND_PASSTHROUGH_SOURCES: ipv6
          ? [INBOUND_PASSTHROUGH_SOURCE_V4, INBOUND_PASSTHROUGH_SOURCE_V6]
          : [INBOUND_PASSTHROUGH_SOURCE_V4],
        IPV6_CAPTURE: ipv6,
      },
    },
    admin: { address: socketAddress('127.0.0.1', PORTS.admin) },
    static_resources: {
      listeners: [
        ...captureListeners,
        adminPathListener(LISTENERS.readiness, PORTS.readiness, READINESS_PATH, ipv6),
        adminPathListener(LISTENERS.prometheus, PORTS.prometheus, PROMETHEUS_PATH, ipv6),
      ],
      clusters: [...passthroughClusters, staticCluster(CLUSTERS.admin, '127.0.0.1', PORTS.admin), ...xdsCluster(proxy, input.sdsDir ?? BOOTSTRAP_DIR)],
    },
    ...(ads
      ? {
          dynamic_resources: {
            ads_config: {
              api_type: 'GRPC',
              transport_api_version: 'V3',
              grpc_services: [{ envoy_grpc: { cluster_name: CLUSTERS.xds } }],
              set_node_on_first_message_only: true,
            },
            lds_config: adsSource(),
            cds_config: adsSource(),
          },
        }
      : {}),
  };
}

/**
 * Returns the bootstrap envoy-init renders from its flags (`inputs`, with a bootstrap request), the
 * pod's facts and its IPv6: the one entry point envoy-init, `bootstrap -f` and the tests share.
 */
export function renderPodBootstrap(
  inputs: InitInputs & { readonly bootstrap: BootstrapRequest },
  pod: PodIdentity,
  ipv6: boolean,
  injectorVersion: string,
): JsonObject {
  return buildBootstrap({
    proxy: inputs.proxy,
    pod,
    workloadName: inputs.bootstrap.workloadName,
    injectorVersion,
    configHash: inputs.bootstrap.configHash,
    ipv6,
    sdsDir: inputs.bootstrap.dir,
  });
}

/**
 * Returns the bootstrap file's text: indented JSON (Envoy reads `.json` as JSON), one object
 * followed by a newline. The file lives in the pod's emptyDir, never in the pod object, so its size
 * costs nothing stored; `bootstrap -f` prints exactly this text.
 */
export function formatBootstrapFile(bootstrap: JsonObject): string {
  return `${JSON.stringify(bootstrap, null, 2)}\n`;
}

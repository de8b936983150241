// Rules of a working Envoy bootstrap that its protos cannot express: names unique, every cluster
// referenced defined, ORIGINAL_DST clusters load-balanced by CLUSTER_PROVIDED, ports in range and
// not bound twice, extensions placed where their category belongs, the router last in HTTP
// filters. Envoy refuses (or silently misroutes) a bootstrap that breaks any of them.
import { isIP } from 'node:net';
import type { MessageNode, Violation } from './protos.ts';

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
/** A field by its proto name or its JSON name (both are valid ProtoJSON). */
const get = (o: Obj, name: string): unknown => o[name] ?? o[name.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase())];

const T = {
  listener: 'envoy.config.listener.v3.Listener',
  cluster: 'envoy.config.cluster.v3.Cluster',
  tcpProxy: 'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
  tcpProxyWeight: 'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster.ClusterWeight',
  routeAction: 'envoy.config.route.v3.RouteAction',
  routeWeight: 'envoy.config.route.v3.WeightedCluster.ClusterWeight',
  envoyGrpc: 'envoy.config.core.v3.GrpcService.EnvoyGrpc',
  apiConfigSource: 'envoy.config.core.v3.ApiConfigSource',
  loadAssignment: 'envoy.config.endpoint.v3.ClusterLoadAssignment',
  socketAddress: 'envoy.config.core.v3.SocketAddress',
  listenerFilter: 'envoy.config.listener.v3.ListenerFilter',
  networkFilter: 'envoy.config.listener.v3.Filter',
  hcm: 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  httpFilter: 'envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter',
  accessLog: 'envoy.config.accesslog.v3.AccessLog',
  transportSocket: 'envoy.config.core.v3.TransportSocket',
  routeConfiguration: 'envoy.config.route.v3.RouteConfiguration',
  node: 'envoy.config.core.v3.Node',
} as const;

const ROUTER = 'envoy.extensions.filters.http.router.v3.Router';

/** Where an extension's typed_config may appear: the message holding it → its type's package. */
const EXTENSION_CATEGORIES: readonly (readonly [string, string])[] = [
  [T.listenerFilter, 'envoy.extensions.filters.listener.'],
  [T.networkFilter, 'envoy.extensions.filters.network.'],
  [T.httpFilter, 'envoy.extensions.filters.http.'],
  [T.accessLog, 'envoy.extensions.access_loggers.'],
  [T.transportSocket, 'envoy.extensions.transport_sockets.'],
];

const typeNameOf = (any: unknown): string | undefined => {
  const url = isObject(any) ? str(any['@type']) : undefined;
  return url?.slice(url.lastIndexOf('/') + 1);
};

/** Returns every violation of the rules above in a bootstrap whose messages were walked by envoy-proto. */
export function bootstrapRuleViolations(messages: readonly MessageNode[]): Violation[] {
  const violations: Violation[] = [];
  const fail = (path: string, message: string) => violations.push({ path, message });
  const of = (type: string) => messages.filter((m) => m.type === type);

  // Names: Envoy keys listeners and clusters by name; a duplicate replaces or is refused.
  for (const [type, what] of [[T.listener, 'listener'], [T.cluster, 'cluster']] as const) {
    const seen = new Map<string, string>();
    for (const node of of(type)) {
      const name = str(get(node.value, 'name'));
      if (name === undefined || name === '') {
        fail(node.path, `${what} without a name`);
        continue;
      }
      const first = seen.get(name);
      if (first !== undefined) fail(`${node.path}.name`, `${what} name ${JSON.stringify(name)} is also used at ${first}`);
      else seen.set(name, node.path);
    }
  }

  // References: every cluster something sends traffic to must be defined.
  const clusters = new Set(of(T.cluster).map((n) => str(get(n.value, 'name'))).filter((n) => n !== undefined));
  const references: { path: string; name: unknown }[] = [
    ...of(T.tcpProxy).filter((n) => get(n.value, 'cluster') !== undefined).map((n) => ({ path: `${n.path}.cluster`, name: get(n.value, 'cluster') })),
    ...of(T.tcpProxyWeight).map((n) => ({ path: `${n.path}.name`, name: get(n.value, 'name') })),
    ...of(T.routeAction).filter((n) => get(n.value, 'cluster') !== undefined).map((n) => ({ path: `${n.path}.cluster`, name: get(n.value, 'cluster') })),
    ...of(T.routeWeight).map((n) => ({ path: `${n.path}.name`, name: get(n.value, 'name') })),
    ...of(T.envoyGrpc).map((n) => ({ path: `${n.path}.cluster_name`, name: get(n.value, 'cluster_name') })),
    ...of(T.apiConfigSource).flatMap((n) => list(get(n.value, 'cluster_names')).map((name, i) => ({ path: `${n.path}.cluster_names[${i}]`, name }))),
  ];
  for (const { path, name } of references) {
    if (typeof name !== 'string' || !clusters.has(name)) fail(path, `cluster ${JSON.stringify(name)} is referenced but not defined`);
  }
  const clusterAt = new Map(of(T.cluster).map((n) => [n.path, str(get(n.value, 'name'))]));
  for (const node of of(T.loadAssignment)) {
    const owner = clusterAt.get(node.path.replace(/\.(load_assignment|loadAssignment)$/, ''));
    const name = str(get(node.value, 'cluster_name'));
    if (owner !== undefined && name !== owner) fail(`${node.path}.cluster_name`, `load_assignment names ${JSON.stringify(name)}, its cluster is ${JSON.stringify(owner)}`);
  }

  // ORIGINAL_DST: the destination comes from the connection, so only CLUSTER_PROVIDED balances it.
  for (const node of of(T.cluster)) {
    const type = get(node.value, 'type') ?? 'STATIC';
    const lb = get(node.value, 'lb_policy') ?? 'ROUND_ROBIN';
    if (type === 'ORIGINAL_DST') {
      if (lb !== 'CLUSTER_PROVIDED') fail(`${node.path}.lb_policy`, `an ORIGINAL_DST cluster needs lb_policy CLUSTER_PROVIDED, not ${String(lb)}`);
      if (get(node.value, 'load_assignment') !== undefined) fail(`${node.path}.load_assignment`, 'an ORIGINAL_DST cluster takes no endpoints');
    } else if (lb === 'CLUSTER_PROVIDED') {
      fail(`${node.path}.lb_policy`, `CLUSTER_PROVIDED needs an ORIGINAL_DST cluster, not ${String(type)}`);
    }
  }

  // Ports: 1–65535 where something listens or is connected to; 0 (any) only for a source address.
  for (const node of of(T.socketAddress)) {
    const port = Number(get(node.value, 'port_value') ?? 0);
    const source = /(upstream_bind_config|upstreamBindConfig|source_address|sourceAddress)/.test(node.path);
    if (!Number.isInteger(port) || port < (source ? 0 : 1) || port > 65535) fail(`${node.path}.port_value`, `port ${port} out of range (${source ? 0 : 1}–65535)`);
    const address = str(get(node.value, 'address')) ?? '';
    if (isIP(address) === 0 && !isInDnsCluster(node.path, messages)) {
      fail(`${node.path}.address`, `${JSON.stringify(address)} is not an IP address (only DNS clusters resolve names)`);
    }
  }
  checkBindConflicts(messages, fail);

  // Extensions: Envoy finds the factory by @type within the slot's category.
  for (const [holder, prefix] of EXTENSION_CATEGORIES) {
    for (const node of of(holder)) {
      const name = typeNameOf(get(node.value, 'typed_config'));
      if (name !== undefined && !name.startsWith(prefix)) fail(`${node.path}.typed_config`, `${name} is not a ${prefix}* extension`);
    }
  }
  for (const node of of(T.cluster)) {
    const options = get(node.value, 'typed_extension_protocol_options');
    for (const [key, value] of Object.entries(isObject(options) ? options : {})) {
      if (typeNameOf(value) !== key) fail(`${node.path}.typed_extension_protocol_options[${JSON.stringify(key)}]`, `key must be the options' type ${String(typeNameOf(value))}`);
    }
  }
  for (const node of of(T.hcm)) {
    const filters = list(get(node.value, 'http_filters'));
    filters.forEach((filter, i) => {
      const isRouter = typeNameOf(isObject(filter) ? get(filter, 'typed_config') : undefined) === ROUTER;
      if (isRouter !== (i === filters.length - 1)) fail(`${node.path}.http_filters[${i}]`, 'the router must be the last HTTP filter, and only the last');
    });
    if (filters.length === 0) fail(`${node.path}.http_filters`, 'an HTTP connection manager needs the router filter');
  }

  // Listeners: a TCP listener needs a filter chain, and no two chains may match the same connections.
  for (const node of of(T.listener)) {
    const chains = list(get(node.value, 'filter_chains'));
    if (chains.length === 0 && get(node.value, 'default_filter_chain') === undefined) fail(`${node.path}.filter_chains`, 'a listener needs a filter chain');
    const matches = chains.map((c) => canonical(isObject(c) ? (get(c, 'filter_chain_match') ?? {}) : {}));
    matches.forEach((m, i) => {
      const j = matches.indexOf(m);
      if (j !== i) fail(`${node.path}.filter_chains[${i}]`, `matches the same connections as filter_chains[${j}]`);
    });
  }
  for (const node of of(T.routeConfiguration)) {
    const seen = new Set<string>();
    for (const [i, vhost] of list(get(node.value, 'virtual_hosts')).entries()) {
      for (const domain of list(isObject(vhost) ? get(vhost, 'domains') : [])) {
        if (seen.has(String(domain))) fail(`${node.path}.virtual_hosts[${i}].domains`, `domain ${JSON.stringify(domain)} is in two virtual hosts`);
        seen.add(String(domain));
      }
    }
  }

  // The node: a control plane (and Envoy's own CDS/ADS) needs its id and cluster.
  for (const node of of(T.node)) {
    for (const field of ['id', 'cluster']) {
      if (!str(get(node.value, field))) fail(`${node.path}.${field}`, `node.${field} must be set`);
    }
  }
  return violations;
}

function isInDnsCluster(path: string, messages: readonly MessageNode[]): boolean {
  const cluster = messages.find((m) => m.type === T.cluster && path.startsWith(`${m.path}.`));
  const type = cluster === undefined ? undefined : get(cluster.value, 'type');
  return type === 'STRICT_DNS' || type === 'LOGICAL_DNS';
}

function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (isObject(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b))) : v));
}

/** Two sockets bound to the same port conflict unless their addresses cannot overlap. */
function checkBindConflicts(messages: readonly MessageNode[], fail: (path: string, message: string) => void): void {
  const binds: { path: string; address: string; port: number; v4compat: boolean }[] = [];
  for (const node of messages) {
    // Listener addresses (primary and additional) and the admin address are bound by Envoy.
    if (node.type !== T.socketAddress) continue;
    if (!/^(admin\.address|static_resources\.listeners\[\d+\]\.(address|additional_addresses\[\d+\]\.address))\.socket_address$/.test(node.path)) continue;
    binds.push({
      path: node.path,
      address: str(get(node.value, 'address')) ?? '',
      port: Number(get(node.value, 'port_value') ?? 0),
      v4compat: get(node.value, 'ipv4_compat') === true,
    });
  }
  const family = (a: string) => isIP(a);
  const overlaps = (a: (typeof binds)[number], b: (typeof binds)[number]): boolean => {
    if (a.port !== b.port || a.port === 0) return false;
    if (a.address === b.address) return true;
    const wildcard = (x: (typeof binds)[number], y: (typeof binds)[number]) =>
      (x.address === '0.0.0.0' && family(y.address) === 4) ||
      (x.address === '::' && (family(y.address) === 6 || (x.v4compat && family(y.address) === 4)));
    return wildcard(a, b) || wildcard(b, a);
  };
  binds.forEach((a, i) => {
    const b = binds.slice(0, i).find((x) => overlaps(a, x));
    if (b !== undefined) fail(a.path, `${a.address}:${a.port} is already bound at ${b.path}`);
  });
}

// The validator every bootstrap goes through (test/support/envoy-proto*.ts) must itself be proven:
// it loads Envoy's v3 API or fails loudly, and it refuses each kind of mistake with its path.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { admissionContext } from '../src/core/context.ts';
import { injectPod } from '../src/core/inject.ts';
import { bootstrapOf } from './support/check-injected.ts';
import { testConfig, testConfigFromYaml, testRuntime } from './support/config.ts';
import { BOOTSTRAP_TYPE, assertValidBootstrap } from './support/envoy-proto-check.ts';
import {
  PROTO_INCLUDE_DIRS,
  SKIPPED_PROTO_FILES,
  envoyProtos,
  envoyV3ProtoFiles,
  loadProtoRoot,
  validateEnvoyMessage,
  type Violation,
} from './support/envoy-proto.ts';
import { bootstrapRuleViolations } from './support/envoy-proto-rules.ts';

type Obj = Record<string, any>;

const POD = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web-0', labels: { app: 'web' } },
  spec: { containers: [{ name: 'web', image: 'nginx', ports: [{ containerPort: 8080 }] }] },
};

function bootstrapFor(config = testConfig()): Obj {
  const result = injectPod(POD, admissionContext({ namespace: 'shop' }), config, testRuntime);
  assert.ok(result.pod);
  return bootstrapOf(result.pod as Obj);
}

const STATIC = bootstrapFor();
const ADS = bootstrapFor(testConfigFromYaml('proxy: {ads: {address: "xds.control-plane.svc:15012", tls: true}, accessLog: true}'));

test('Envoy v3 API: loaded once per process, with every type the bootstrap uses', (t) => {
  const first = envoyProtos();
  assert.equal(envoyProtos(), first, 'loaded once and kept');
  t.diagnostic(`loaded ${first.files} proto files in ${first.loadMs.toFixed(0)} ms`);
  for (const name of [
    BOOTSTRAP_TYPE,
    'envoy.extensions.filters.listener.original_dst.v3.OriginalDst',
    'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
    'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
    'envoy.extensions.filters.http.router.v3.Router',
    'envoy.extensions.access_loggers.stream.v3.StdoutAccessLog',
    'envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
    'envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
  ]) {
    assert.ok(first.root.lookupType(name), name);
  }
  // PGV's own rules are loaded as options of the fields they constrain.
  const port = first.root.lookupType('envoy.config.core.v3.SocketAddress').fields['port_value'];
  assert.equal(port?.options?.['(validate.rules).uint32.lte'], 65535);
});

test('an import that is not shipped fails the load loudly, naming it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'envoy-proto-'));
  try {
    mkdirSync(join(dir, 'demo'));
    writeFileSync(join(dir, 'demo', 'a.proto'), 'syntax = "proto3";\npackage demo;\nimport "demo/missing.proto";\nmessage A { demo.B b = 1; }\n');
    assert.throws(() => loadProtoRoot(['demo/a.proto'], [dir, ...PROTO_INCLUDE_DIRS]), /unresolved proto import "demo\/missing\.proto" \(imported by .*demo\/a\.proto\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('only files whose imports are not shipped are skipped, and each of them really cannot load', () => {
  const files = envoyV3ProtoFiles();
  assert.ok(files.length > 350, `the v3 API (${files.length} files)`);
  for (const [file, missing] of Object.entries(SKIPPED_PROTO_FILES)) {
    assert.ok(!files.includes(file));
    const expected = missing.replace(/ \(skipped\)$/, '');
    // The skipped file that re-exports another skipped file fails on that one's missing import.
    assert.throws(() => loadProtoRoot([file], PROTO_INCLUDE_DIRS), /unresolved proto import "(opencensus|opentelemetry|io\/prometheus)\//, `${file} needs ${expected}`);
  }
});

test('the generated bootstraps are valid: static passthrough and ADS over TLS', () => {
  assertValidBootstrap(STATIC);
  assertValidBootstrap(ADS);
});

interface Case {
  readonly name: string;
  readonly base?: Obj;
  readonly change: (b: Obj) => void;
  readonly path: string;
  readonly message: RegExp;
}

const tcpProxy = (b: Obj) => b['static_resources']['listeners'][0]['default_filter_chain']['filters'][0]['typed_config'];
const TCP_PROXY_PATH = 'static_resources.listeners[0].default_filter_chain.filters[0].typed_config';

/** One row per kind of mistake; each must be refused at exactly its path. */
const CASES: readonly Case[] = [
  {
    name: 'a misspelt field',
    change: (b) => (b['static_resources']['listeners'][1]['trafic_direction'] = 'INBOUND'),
    path: 'static_resources.listeners[1].trafic_direction',
    message: /unknown field "trafic_direction" in envoy\.config\.listener\.v3\.Listener \(did you mean "traffic_direction"\?\)/,
  },
  {
    name: 'a misspelt field inside a typed_config',
    change: (b) => (tcpProxy(b)['clustr'] = 'x'),
    path: `${TCP_PROXY_PATH}.clustr`,
    message: /unknown field "clustr" in envoy\.extensions\.filters\.network\.tcp_proxy\.v3\.TcpProxy/,
  },
  {
    name: 'a wrong type',
    change: (b) => (b['admin']['address']['socket_address']['port_value'] = 'fifteen thousand'),
    path: 'admin.address.socket_address.port_value',
    message: /invalid integer/,
  },
  {
    name: 'an object where a list belongs',
    change: (b) => (b['static_resources']['clusters'] = { name: 'x' }),
    path: 'static_resources.clusters',
    message: /expected a list/,
  },
  {
    name: 'an unknown enum value',
    change: (b) => (b['static_resources']['clusters'][0]['lb_policy'] = 'ROUND_ROBINN'),
    path: 'static_resources.clusters[0].lb_policy',
    message: /unknown enum value: "ROUND_ROBINN"/,
  },
  {
    name: 'a bad duration',
    change: (b) => (b['static_resources']['clusters'][0]['connect_timeout'] = '10'),
    path: 'static_resources.clusters[0].connect_timeout',
    message: /google\.protobuf\.Duration: invalid duration: "10"/,
  },
  {
    name: 'an unknown @type',
    change: (b) => (b['static_resources']['listeners'][0]['listener_filters'][0]['typed_config']['@type'] = 'type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDestination'),
    path: 'static_resources.listeners[0].listener_filters[0].typed_config.@type',
    message: /unknown @type "type\.googleapis\.com\/envoy\.extensions\.filters\.listener\.original_dst\.v3\.OriginalDestination"/,
  },
  {
    name: 'an Any without @type',
    change: (b) => delete b['static_resources']['listeners'][0]['listener_filters'][0]['typed_config']['@type'],
    path: 'static_resources.listeners[0].listener_filters[0].typed_config',
    message: /google\.protobuf\.Any without @type/,
  },
  {
    name: 'a wrong type inside a map of Any (typed_extension_protocol_options)',
    base: ADS,
    change: (b) => {
      const xds = b['static_resources']['clusters'].find((c: Obj) => c['name'] === 'xds_control_plane');
      xds['typed_extension_protocol_options']['envoy.extensions.upstreams.http.v3.HttpProtocolOptions']['explicit_http_config']['http2_protocol_options'] = [];
    },
    path: 'static_resources.clusters[1].typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].explicit_http_config.http2_protocol_options',
    message: /expected an object \(envoy\.config\.core\.v3\.Http2ProtocolOptions\)/,
  },
  {
    name: 'an unknown enum value deep in a TLS context',
    base: ADS,
    change: (b) => {
      const xds = b['static_resources']['clusters'].find((c: Obj) => c['name'] === 'xds_control_plane');
      xds['transport_socket']['typed_config']['common_tls_context']['validation_context']['match_typed_subject_alt_names'][0]['san_type'] = 'HOSTNAME';
    },
    path: 'static_resources.clusters[1].transport_socket.typed_config.common_tls_context.validation_context.match_typed_subject_alt_names[0].san_type',
    message: /unknown enum value: "HOSTNAME"/,
  },
  {
    name: 'a deprecated field',
    change: (b) => (b['admin']['access_log_path'] = '/dev/stdout'),
    path: 'admin.access_log_path',
    message: /envoy\.config\.bootstrap\.v3\.Admin\.access_log_path is deprecated/,
  },
  {
    name: 'two members of a oneof',
    change: (b) => (b['admin']['address']['socket_address']['named_port'] = 'admin'),
    path: 'admin.address.socket_address.named_port',
    message: /port_value and named_port are both set/,
  },
  {
    name: 'PGV: an empty string that must not be',
    change: (b) => (tcpProxy(b)['stat_prefix'] = ''),
    path: `${TCP_PROXY_PATH}.stat_prefix`,
    message: /must have at least 1 character/,
  },
  {
    name: 'PGV: a required field left out (checked at its default, as PGV does)',
    change: (b) => delete tcpProxy(b)['stat_prefix'],
    path: `${TCP_PROXY_PATH}.stat_prefix`,
    message: /must have at least 1 character/,
  },
  {
    name: 'PGV: a port above 65535',
    change: (b) => (b['admin']['address']['socket_address']['port_value'] = 70000),
    path: 'admin.address.socket_address.port_value',
    message: /value 70000 out of range \(lte 65535\)/,
  },
  {
    name: 'PGV: a zero connect timeout',
    change: (b) => (b['static_resources']['clusters'][0]['connect_timeout'] = '0s'),
    path: 'static_resources.clusters[0].connect_timeout',
    message: /value 0s out of range \(gt 0s\)/,
  },
  {
    name: 'PGV: a required oneof left empty',
    change: (b) => delete b['admin']['address']['socket_address']['port_value'],
    path: 'admin.address.socket_address',
    message: /one of port_value, named_port is required/,
  },
];

for (const c of CASES) {
  test(`the validator refuses ${c.name}, with its path`, () => {
    const bootstrap = structuredClone(c.base ?? STATIC);
    c.change(bootstrap);
    const { violations } = validateEnvoyMessage(BOOTSTRAP_TYPE, bootstrap);
    const hit = violations.find((v) => v.path === c.path);
    assert.ok(hit, `a violation at ${c.path}; got ${JSON.stringify(violations)}`);
    assert.match(hit.message, c.message);
  });
}

/** One row per rule the protos cannot express. */
const RULES: readonly Case[] = [
  {
    name: 'two listeners with the same name',
    change: (b) => (b['static_resources']['listeners'][1]['name'] = b['static_resources']['listeners'][0]['name']),
    path: 'static_resources.listeners[1].name',
    message: /listener name "outbound_capture" is also used at static_resources\.listeners\[0\]/,
  },
  {
    name: 'two clusters with the same name',
    change: (b) => (b['static_resources']['clusters'][1]['name'] = 'outbound_passthrough'),
    path: 'static_resources.clusters[1].name',
    message: /cluster name "outbound_passthrough" is also used/,
  },
  {
    name: 'a reference to a cluster nobody defined',
    change: (b) => (tcpProxy(b)['cluster'] = 'outbound_passthru'),
    path: `${TCP_PROXY_PATH}.cluster`,
    message: /cluster "outbound_passthru" is referenced but not defined/,
  },
  {
    name: 'a route to a cluster nobody defined',
    change: (b) => (b['static_resources']['listeners'][2]['filter_chains'][0]['filters'][0]['typed_config']['route_config']['virtual_hosts'][0]['routes'][0]['route']['cluster'] = 'admin'),
    path: 'static_resources.listeners[2].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.cluster',
    message: /cluster "admin" is referenced but not defined/,
  },
  {
    name: 'an ADS stream to a cluster nobody defined',
    base: ADS,
    change: (b) => (b['dynamic_resources']['ads_config']['grpc_services'][0]['envoy_grpc']['cluster_name'] = 'xds'),
    path: 'dynamic_resources.ads_config.grpc_services[0].envoy_grpc.cluster_name',
    message: /cluster "xds" is referenced but not defined/,
  },
  {
    name: 'an ORIGINAL_DST cluster balanced round-robin',
    change: (b) => (b['static_resources']['clusters'][0]['lb_policy'] = 'ROUND_ROBIN'),
    path: 'static_resources.clusters[0].lb_policy',
    message: /ORIGINAL_DST cluster needs lb_policy CLUSTER_PROVIDED/,
  },
  {
    name: 'CLUSTER_PROVIDED on a static cluster',
    change: (b) => (b['static_resources']['clusters'][2]['lb_policy'] = 'CLUSTER_PROVIDED'),
    path: 'static_resources.clusters[2].lb_policy',
    message: /CLUSTER_PROVIDED needs an ORIGINAL_DST cluster, not STATIC/,
  },
  {
    name: 'a listener on port 0',
    change: (b) => (b['static_resources']['listeners'][3]['address']['socket_address']['port_value'] = 0),
    path: 'static_resources.listeners[3].address.socket_address.port_value',
    message: /port 0 out of range \(1–65535\)/,
  },
  {
    name: 'two listeners on the same port',
    change: (b) => (b['static_resources']['listeners'][3]['address']['socket_address']['port_value'] = 15021),
    path: 'static_resources.listeners[3].address.socket_address',
    message: /0\.0\.0\.0:15021 is already bound at static_resources\.listeners\[2\]\.address\.socket_address/,
  },
  {
    name: 'a listener on the admin port',
    change: (b) => (b['static_resources']['listeners'][3]['address']['socket_address']['port_value'] = 15000),
    path: 'static_resources.listeners[3].address.socket_address',
    message: /0\.0\.0\.0:15000 is already bound at admin\.address\.socket_address/,
  },
  {
    name: 'a host name where Envoy needs an IP address',
    change: (b) => (b['static_resources']['listeners'][0]['address']['socket_address']['address'] = 'localhost'),
    path: 'static_resources.listeners[0].address.socket_address.address',
    message: /"localhost" is not an IP address/,
  },
  {
    name: 'a network filter among the listener filters',
    change: (b) => (b['static_resources']['listeners'][0]['listener_filters'][0]['typed_config'] = { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 'x', cluster: 'blackhole' }),
    path: 'static_resources.listeners[0].listener_filters[0].typed_config',
    message: /envoy\.extensions\.filters\.network\.tcp_proxy\.v3\.TcpProxy is not a envoy\.extensions\.filters\.listener\.\* extension/,
  },
  {
    name: 'an HTTP filter after the router',
    change: (b) => {
      const hcm = b['static_resources']['listeners'][2]['filter_chains'][0]['filters'][0]['typed_config'];
      hcm['http_filters'].push({ name: 'buffer', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer', max_request_bytes: 1024 } });
    },
    path: 'static_resources.listeners[2].filter_chains[0].filters[0].typed_config.http_filters[0]',
    message: /the router must be the last HTTP filter/,
  },
  {
    name: 'protocol options under a key that is not their type',
    base: ADS,
    change: (b) => {
      const options = b['static_resources']['clusters'][1]['typed_extension_protocol_options'];
      options['envoy.extensions.upstreams.http.v3.Http2ProtocolOptions'] = options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'];
      delete options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'];
    },
    path: 'static_resources.clusters[1].typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.Http2ProtocolOptions"]',
    message: /key must be the options' type envoy\.extensions\.upstreams\.http\.v3\.HttpProtocolOptions/,
  },
  {
    name: 'a load assignment naming another cluster',
    change: (b) => (b['static_resources']['clusters'][3]['load_assignment']['cluster_name'] = 'admin'),
    path: 'static_resources.clusters[3].load_assignment.cluster_name',
    message: /load_assignment names "admin", its cluster is "envoy_admin"/,
  },
  {
    name: 'two filter chains matching the same connections',
    change: (b) => b['static_resources']['listeners'][1]['filter_chains'].push(structuredClone(b['static_resources']['listeners'][1]['filter_chains'][0])),
    path: 'static_resources.listeners[1].filter_chains[1]',
    message: /matches the same connections as filter_chains\[0\]/,
  },
  {
    name: 'a node without an id',
    change: (b) => (b['node']['id'] = ''),
    path: 'node.id',
    message: /node\.id must be set/,
  },
];

for (const c of RULES) {
  test(`the rules refuse ${c.name}, with its path`, () => {
    const bootstrap = structuredClone(c.base ?? STATIC);
    c.change(bootstrap);
    const { violations, messages } = validateEnvoyMessage(BOOTSTRAP_TYPE, bootstrap);
    assert.deepEqual(violations, [], 'the protos alone accept it');
    const rules: Violation[] = bootstrapRuleViolations(messages);
    const hit = rules.find((v) => v.path === c.path);
    assert.ok(hit, `a violation at ${c.path}; got ${JSON.stringify(rules)}`);
    assert.match(hit.message, c.message);
  });
}

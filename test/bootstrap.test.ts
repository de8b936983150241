// The bootstrap (SPEC.md §4): what each listener and cluster does, checked on the generated
// structure, and every combination of the settings that shape it validated strictly against
// Envoy's v3 protos (through checkInjectedPod, which renders it from the pod's envoy-init flags as
// envoy-init does, with IPv6 and without).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { adsSdsResources, buildBootstrap, type PodIdentity } from '../src/core/bootstrap.ts';
import { admissionContext } from '../src/core/context.ts';
import { injectPod } from '../src/core/inject.ts';
import { defaultProxyConfig } from '../src/core/overrides.ts';
import type { EffectiveProxyConfig, InjectorConfig } from '../src/core/types.ts';
import { checkInjectedPod } from './support/check-injected.ts';
import { testConfig, testConfigFromYaml, testRuntime } from './support/config.ts';
import { assertValidBootstrap } from './support/envoy-proto-check.ts';
import { assertValidEnvoyMessage, validateEnvoyMessage } from './support/envoy-proto.ts';

type Obj = Record<string, any>;

/** The facts of a running pod, as envoy-init reads them from the downward API. */
const POD: PodIdentity = {
  name: 'web-0',
  namespace: 'shop',
  instanceIps: '10.1.2.3,fd00:1::3',
  nodeName: 'node-7',
  serviceAccount: 'web',
  labels: { app: 'web' },
};

function bootstrap(config: InjectorConfig = testConfig(), options: { labels?: Record<string, string>; ipv6?: boolean } = {}): Obj {
  const proxy: EffectiveProxyConfig = defaultProxyConfig(config, testRuntime);
  return buildBootstrap({
    proxy,
    pod: { ...POD, labels: options.labels ?? POD.labels },
    workloadName: 'web',
    injectorVersion: '0.0.0-test',
    configHash: 'cafe',
    ipv6: options.ipv6 ?? true,
  });
}

const listener = (b: Obj, name: string): Obj => b['static_resources']['listeners'].find((l: Obj) => l['name'] === name);
const cluster = (b: Obj, name: string): Obj => b['static_resources']['clusters'].find((c: Obj) => c['name'] === name);
const names = (list: Obj[]): string[] => list.map((x) => x['name']);
const tcpProxyOf = (chain: Obj): Obj => chain['filters'][0]['typed_config'];

test('static passthrough: admin on loopback, two capture listeners, readiness and metrics', () => {
  const b = bootstrap();
  assertValidBootstrap(b);
  assert.deepEqual(b['admin'], { address: { socket_address: { address: '127.0.0.1', port_value: 15000 } } });
  assert.deepEqual(names(b['static_resources']['listeners']), ['outbound_capture', 'inbound_capture', 'readiness', 'prometheus']);
  assert.deepEqual(names(b['static_resources']['clusters']), ['outbound_passthrough', 'inbound_passthrough', 'blackhole', 'envoy_admin']);
  assert.equal(b['dynamic_resources'], undefined, 'no control plane unless configured');
});

test('capture listeners: original_dst, passthrough by default, the loop blackholed', () => {
  const b = bootstrap();
  const outbound = listener(b, 'outbound_capture');
  assert.equal(outbound['traffic_direction'], 'OUTBOUND');
  assert.equal(outbound['listener_filters'][0]['name'], 'envoy.filters.listener.original_dst');
  assert.equal(tcpProxyOf(outbound['default_filter_chain'])['cluster'], 'outbound_passthrough');
  // Only a connection from this pod to its own capture port loops: another host's port 15001 is fine.
  assert.deepEqual(outbound['filter_chains'].map((c: Obj) => [c['filter_chain_match'], tcpProxyOf(c)['cluster']]), [
    [{ destination_port: 15001, source_type: 'SAME_IP_OR_LOOPBACK' }, 'blackhole'],
  ]);
  const inbound = listener(b, 'inbound_capture');
  assert.equal(inbound['traffic_direction'], 'INBOUND');
  assert.equal(tcpProxyOf(inbound['default_filter_chain'])['cluster'], 'inbound_passthrough');
  // Inbound traffic is addressed to this pod: any connection to 15006 itself would loop.
  assert.deepEqual(inbound['filter_chains'].map((c: Obj) => [c['filter_chain_match'], tcpProxyOf(c)['cluster']]), [
    [{ destination_port: 15006 }, 'blackhole'],
  ]);
  // The blackhole has no endpoints: whatever is sent there is refused.
  assert.equal(cluster(b, 'blackhole')['load_assignment']['endpoints'], undefined);
});

test('passthrough clusters: ORIGINAL_DST, CLUSTER_PROVIDED, no circuit-breaker cap, inbound from 127.0.0.6 and ::6', () => {
  const b = bootstrap();
  for (const name of ['outbound_passthrough', 'inbound_passthrough']) {
    const c = cluster(b, name);
    assert.equal(c['type'], 'ORIGINAL_DST');
    assert.equal(c['lb_policy'], 'CLUSTER_PROVIDED');
    // Envoy's defaults would cap the app at 1024 concurrent connections per direction.
    assert.deepEqual(c['circuit_breakers']['thresholds'], [
      { priority: 'DEFAULT', max_connections: 4294967295, max_pending_requests: 4294967295, max_requests: 4294967295, max_retries: 4294967295 },
    ]);
  }
  assert.equal(cluster(b, 'outbound_passthrough')['upstream_bind_config'], undefined, 'outbound leaves from the pod as usual');
  assert.deepEqual(cluster(b, 'inbound_passthrough')['upstream_bind_config'], {
    source_address: { address: '127.0.0.6', port_value: 0 },
    // ::6 must be assigned to lo (Istio and Kuma do so in their init containers); no freebind.
    extra_source_addresses: [{ address: { address: '::6', port_value: 0 } }],
  });
});

test('a pod with IPv6: every listener also on [::] (v6-only socket); without: IPv4 only and no ::6', () => {
  const dual = bootstrap();
  for (const l of dual['static_resources']['listeners']) {
    assert.equal(l['address']['socket_address']['address'], '0.0.0.0');
    // Exactly this: ipv4_compat stays off, so the [::] socket does not take IPv4 connections from 0.0.0.0's.
    assert.deepEqual(l['additional_addresses'], [{ address: { socket_address: { address: '::', port_value: l['address']['socket_address']['port_value'] } } }]);
  }
  // Whatever the setting says, what envoy-init found in the pod decides (ipv6.ts decides it once
  // for the rules and the bootstrap alike).
  const v4 = bootstrap(testConfig(), { ipv6: false });
  assertValidBootstrap(v4);
  for (const l of v4['static_resources']['listeners']) assert.equal(l['additional_addresses'], undefined);
  assert.deepEqual(cluster(v4, 'inbound_passthrough')['upstream_bind_config'], { source_address: { address: '127.0.0.6', port_value: 0 } });
  assert.deepEqual(v4['node']['metadata']['INBOUND_PASSTHROUGH_SOURCES'], ['127.0.0.6']);
  assert.equal(v4['node']['metadata']['IPV6_CAPTURE'], false);
  assert.ok(!JSON.stringify(v4).includes('"::'), 'no IPv6 address anywhere');
});

test('readiness and Prometheus listeners forward one path each to the admin interface', () => {
  const b = bootstrap();
  for (const [name, port, path] of [['readiness', 15021, '/ready'], ['prometheus', 15090, '/stats/prometheus']] as const) {
    const l = listener(b, name);
    assert.equal(l['address']['socket_address']['port_value'], port);
    const hcm = l['filter_chains'][0]['filters'][0]['typed_config'];
    assert.deepEqual(hcm['route_config']['virtual_hosts'][0]['routes'], [{ match: { path }, route: { cluster: 'envoy_admin', timeout: '5s' } }]);
    assert.deepEqual(hcm['http_filters'].map((f: Obj) => f['typed_config']['@type']), ['type.googleapis.com/envoy.extensions.filters.http.router.v3.Router']);
  }
  assert.deepEqual(cluster(b, 'envoy_admin')['load_assignment']['endpoints'][0]['lb_endpoints'][0]['endpoint']['address'], {
    socket_address: { address: '127.0.0.1', port_value: 15000 },
  });
});

test('access log: off by default, stdout on every passthrough chain when on', () => {
  const chains = (b: Obj) => ['outbound_capture', 'inbound_capture'].flatMap((n) => [...listener(b, n)['filter_chains'], listener(b, n)['default_filter_chain']]);
  for (const chain of chains(bootstrap())) assert.equal(tcpProxyOf(chain)['access_log'], undefined);
  const logged = bootstrap(testConfig({ ENVOY_INJECTOR_PROXY_ACCESS_LOG: 'true' }));
  assertValidBootstrap(logged);
  for (const chain of chains(logged)) {
    assert.deepEqual(tcpProxyOf(chain)['access_log'], [
      { name: 'envoy.access_loggers.stdout', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog' } },
    ]);
  }
});

test('node: id and cluster from the pod facts envoy-init read, metadata a control plane can use', () => {
  const b = bootstrap(testConfig(), { labels: { app: 'web', 'app.kubernetes.io/version': '1.2' } });
  assert.equal(b['node']['id'], 'web-0.shop');
  assert.equal(b['node']['cluster'], 'web.shop');
  assert.deepEqual(b['node']['metadata'], {
    POD_NAME: 'web-0',
    NAMESPACE: 'shop',
    INSTANCE_IPS: '10.1.2.3,fd00:1::3',
    NODE_NAME: 'node-7',
    SERVICE_ACCOUNT: 'web',
    WORKLOAD_NAME: 'web',
    LABELS: { app: 'web', 'app.kubernetes.io/version': '1.2' },
    INJECTOR_VERSION: '0.0.0-test',
    CONFIG_HASH: 'cafe',
    INBOUND_CAPTURE_PORT: 15006,
    OUTBOUND_CAPTURE_PORT: 15001,
    INBOUND_PASSTHROUGH_SOURCES: ['127.0.0.6', '::6'],
    IPV6_CAPTURE: true,
  });
  // A value is a value: nothing in it is expanded or escaped (it no longer passes through the kubelet).
  const odd = buildBootstrap({
    proxy: defaultProxyConfig(testConfig(), testRuntime),
    pod: { ...POD, labels: { note: 'a$b $(HOME) $$(x) "q"' } },
    workloadName: 'w$(x)',
    injectorVersion: '0.0.0-test',
    configHash: 'cafe',
    ipv6: true,
  }) as Obj;
  assert.deepEqual(odd['node']['metadata']['LABELS'], { note: 'a$b $(HOME) $$(x) "q"' });
  assert.equal(odd['node']['cluster'], 'w$(x).shop');
});

test('ADS: listeners and clusters from the control plane over gRPC/HTTP2; the bootstrap keeps what must work first', () => {
  const b = bootstrap(testConfig({ ENVOY_INJECTOR_PROXY_ADS_ADDRESS: 'xds.control-plane.svc:18000' }));
  assertValidBootstrap(b);
  assert.deepEqual(names(b['static_resources']['listeners']), ['readiness', 'prometheus']);
  assert.deepEqual(names(b['static_resources']['clusters']), ['envoy_admin', 'xds_control_plane']);
  assert.deepEqual(b['dynamic_resources'], {
    ads_config: {
      api_type: 'GRPC',
      transport_api_version: 'V3',
      grpc_services: [{ envoy_grpc: { cluster_name: 'xds_control_plane' } }],
      set_node_on_first_message_only: true,
    },
    // Envoy stays initializing (not ready) until the control plane answered: no 15 s give-up.
    lds_config: { ads: {}, resource_api_version: 'V3', initial_fetch_timeout: '0s' },
    cds_config: { ads: {}, resource_api_version: 'V3', initial_fetch_timeout: '0s' },
  });
  const xds = cluster(b, 'xds_control_plane');
  assert.equal(xds['type'], 'STRICT_DNS', 'a name is resolved');
  assert.deepEqual(xds['typed_extension_protocol_options']['envoy.extensions.upstreams.http.v3.HttpProtocolOptions']['explicit_http_config'], { http2_protocol_options: {} });
  assert.deepEqual(xds['upstream_connection_options'], { tcp_keepalive: {} });
  assert.equal(xds['transport_socket'], undefined, 'plaintext unless proxy.ads.tls');
  // The node tells the control plane how to build the capture listeners.
  assert.equal(b['node']['metadata']['INBOUND_CAPTURE_PORT'], 15006);
  assert.equal(b['node']['metadata']['OUTBOUND_CAPTURE_PORT'], 15001);
});

test('ADS over TLS: the server certificate must chain to the system CAs and name the control plane, canonically; no IP as SNI', () => {
  for (const [address, endpoint, san, sanType, type, sni] of [
    ['xds.control-plane.svc:15012', 'xds.control-plane.svc', 'xds.control-plane.svc', 'DNS', 'STRICT_DNS', 'xds.control-plane.svc'],
    // The trailing dot stays where it means something (the resolver tries no search domains), never in SAN or SNI.
    ['XDS.Control-Plane.svc.cluster.local.:15012', 'XDS.Control-Plane.svc.cluster.local.', 'xds.control-plane.svc.cluster.local', 'DNS', 'STRICT_DNS', 'xds.control-plane.svc.cluster.local'],
    ['10.96.0.20:15012', '10.96.0.20', '10.96.0.20', 'IP_ADDRESS', 'STATIC', undefined],
    ['[fd00::20]:15012', 'fd00::20', 'fd00::20', 'IP_ADDRESS', 'STATIC', undefined],
    // Envoy compares IP SANs as canonical text: FD00:0:0::20 would never match a certificate's fd00::20.
    ['[FD00:0:0::20]:15012', 'fd00::20', 'fd00::20', 'IP_ADDRESS', 'STATIC', undefined],
  ] as const) {
    const b = bootstrap(testConfig({ ENVOY_INJECTOR_PROXY_ADS_ADDRESS: address, ENVOY_INJECTOR_PROXY_ADS_TLS: 'true' }));
    assertValidBootstrap(b);
    const xds = cluster(b, 'xds_control_plane');
    assert.equal(xds['type'], type);
    assert.equal(xds['load_assignment']['endpoints'][0]['lb_endpoints'][0]['endpoint']['address']['socket_address']['address'], endpoint);
    const tls = xds['transport_socket']['typed_config'];
    assert.equal(tls['sni'], sni, `${address}: SNI`);
    assert.deepEqual(tls['common_tls_context']['validation_context'], {
      trusted_ca: { filename: '/etc/ssl/certs/ca-certificates.crt' },
      match_typed_subject_alt_names: [{ san_type: sanType, matcher: { exact: san } }],
    });
  }
});

test('ADS with a CA ConfigMap and a client certificate Secret: file-based SDS watching the kubelet\'s mounts', () => {
  const config = testConfigFromYaml('proxy: {ads: {address: "xds.cp.svc:15012", caConfigMap: xds-ca, clientCertSecret: xds-client}}');
  const proxy = defaultProxyConfig(config, testRuntime);
  assert.equal(proxy.ads?.tls, false, 'tls is not asked for…');
  const b = bootstrap(config);
  assertValidBootstrap(b);
  const tls = cluster(b, 'xds_control_plane')['transport_socket']['typed_config'];
  assert.ok(tls, '…but a CA and a client certificate imply it');
  assert.deepEqual(tls['common_tls_context'], {
    combined_validation_context: {
      default_validation_context: { match_typed_subject_alt_names: [{ san_type: 'DNS', matcher: { exact: 'xds.cp.svc' } }] },
      validation_context_sds_secret_config: {
        name: 'ads_ca',
        sds_config: { path_config_source: { path: '/etc/envoy-bootstrap/ads-ca.sds.json' }, resource_api_version: 'V3' },
      },
    },
    tls_certificate_sds_secret_configs: [
      { name: 'ads_client_cert', sds_config: { path_config_source: { path: '/etc/envoy-bootstrap/ads-client-cert.sds.json' }, resource_api_version: 'V3' } },
    ],
  });
  const files = adsSdsResources(proxy);
  assert.deepEqual(files.map((f) => f.file), ['ads-ca.sds.json', 'ads-client-cert.sds.json']);
  for (const f of files) assertValidEnvoyMessage('envoy.service.discovery.v3.DiscoveryResponse', f.content);
  const [ca, client] = files.map((f) => (f.content['resources'] as Obj[])[0]) as [Obj, Obj];
  // watched_directory is the mount itself: the kubelet's update renames ..data there.
  assert.deepEqual(ca['validation_context'], { trusted_ca: { filename: '/etc/envoy-ads/ca/ca.crt' }, watched_directory: { path: '/etc/envoy-ads/ca' } });
  assert.deepEqual(client['tls_certificate'], {
    certificate_chain: { filename: '/etc/envoy-ads/client-cert/tls.crt' },
    private_key: { filename: '/etc/envoy-ads/client-cert/tls.key' },
    watched_directory: { path: '/etc/envoy-ads/client-cert' },
  });
  // A wrong field in an SDS file is caught by the same strict check.
  const broken = structuredClone(files[1]?.content) as Obj;
  broken['resources'][0]['tls_certificate']['watched_dir'] = { path: '/x' };
  assert.notEqual(validateEnvoyMessage('envoy.service.discovery.v3.DiscoveryResponse', broken).violations.length, 0);
});

test('every combination of the settings that shape the proxy gives a valid pod and bootstrap', () => {
  const pod = (annotations: Record<string, string>) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web-0', labels: { app: 'web' }, annotations },
    spec: { initContainers: [{ name: 'setup', image: 'setup:1' }], containers: [{ name: 'web', image: 'nginx', ports: [{ containerPort: 8080 }] }] },
  });
  let count = 0;
  // Config keys (no annotation exists for them)…
  // (The IPv6 setting only decides what envoy-init does in the pod: checkInjectedPod renders both.)
  for (const ipv6 of ['auto', 'false']) {
    for (const accessLog of ['true', 'false']) {
      for (const [ads, tls] of [['', 'false'], ['xds.cp.svc:18000', 'false'], ['10.0.0.9:18000', 'false'], ['xds.cp.svc:15012', 'true'], ['[fd00::9]:15012', 'true']]) {
        const config = testConfig({
          ENVOY_INJECTOR_PROXY_IPV6: ipv6,
          ENVOY_INJECTOR_PROXY_ACCESS_LOG: accessLog,
          ENVOY_INJECTOR_PROXY_ADS_ADDRESS: ads as string,
          ENVOY_INJECTOR_PROXY_ADS_TLS: tls as string,
        });
        // …times the override annotations that change the envoy container.
        for (const native of ['true', 'false']) {
          for (const hold of ['true', 'false']) {
            for (const drain of ['0', '5']) {
              for (const concurrency of ['0', '2']) {
                const annotations = {
                  'envoy-injector.io/native-sidecar': native,
                  'envoy-injector.io/hold-application-until-proxy-starts': hold,
                  'envoy-injector.io/drain-seconds': drain,
                  'envoy-injector.io/concurrency': concurrency,
                  'envoy-injector.io/log-level': count % 2 === 0 ? 'debug' : 'warn',
                };
                const result = injectPod(pod(annotations), admissionContext({ namespace: 'ns' }), config, testRuntime);
                assert.equal(result.decision.action, 'inject');
                checkInjectedPod(result.pod as Obj);
                count++;
              }
            }
          }
        }
      }
    }
  }
  assert.equal(count, 2 * 2 * 5 * 2 * 2 * 2 * 2);
});

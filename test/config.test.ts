// Configuration: defaults, file, environment, and one clear line for every bad input.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeConfigKeys, envVarFor, loadConfig } from '../src/config.ts';
import { MAX_DNS_NAMES, MAX_EXCLUDED_NAMESPACES } from '../src/core/value-types.ts';
import { testConfig } from './support/config.ts';
import { ConfigError } from '../src/errors.ts';

const file = (text: string) => ({ file: 'injector.yaml', readFile: () => text });

test('defaults: local TLS on 127.0.0.1:8443, pinned images, frozen', () => {
  const config = loadConfig({ env: {} });
  assert.equal(config.server.host, '127.0.0.1');
  assert.equal(config.server.port, 8443);
  assert.equal(config.tls.mode, 'local');
  assert.match(config.proxy.image, /^envoyproxy\/envoy:v\d+\.\d+\.\d+$/, 'Envoy pinned to an explicit version');
  assert.match(config.init.image, /envoy-injector:v\d+\.\d+\.\d+/, "envoy-init is the project's own image, pinned");
  assert.deepEqual(config.excludedNamespaces, ['kube-system', 'kube-public', 'kube-node-lease']);
  assert.equal(config.proxy.ads, null);
  assert.ok(Object.isFrozen(config) && Object.isFrozen(config.proxy.resources.requests));
});

test('the file is read over the defaults, and env over the file', () => {
  const yaml = 'server:\n  port: 9443\nproxy:\n  concurrency: 4\n  ads:\n    address: xds.mesh.svc:18000\nexcludedNamespaces: [a, b]\n';
  const config = loadConfig({ ...file(yaml), env: { ENVOY_INJECTOR_PROXY_CONCURRENCY: '8', POD_NAMESPACE: 'mesh' } });
  assert.equal(config.server.port, 9443);
  assert.equal(config.proxy.concurrency, 8);
  assert.deepEqual(config.proxy.ads, { address: 'xds.mesh.svc:18000', tls: false });
  assert.deepEqual(config.excludedNamespaces, ['a', 'b']);
  assert.equal(config.namespace, 'mesh');
});

test('every key has an env var derived from its path', () => {
  assert.equal(envVarFor('proxy.resources.limits.memory'), 'ENVOY_INJECTOR_PROXY_RESOURCES_LIMITS_MEMORY');
  assert.equal(envVarFor('server.bodyLimitBytes'), 'ENVOY_INJECTOR_SERVER_BODY_LIMIT_BYTES');
  const keys = describeConfigKeys();
  assert.equal(new Set(keys.map((k) => k.env)).size, keys.length);
});

test('bad values stop the start with one line naming key, source and what is accepted', () => {
  const cases: [Parameters<typeof loadConfig>[0], string][] = [
    [{ env: { ENVOY_INJECTOR_SERVER_PORT: '70000' } }, 'invalid config server.port="70000" (from env ENVOY_INJECTOR_SERVER_PORT): expected a port from 1 to 65535'],
    [{ ...file('proxy:\n  image: "Not An Image"\n'), env: {} }, 'invalid config proxy.image="Not An Image" (from config file injector.yaml): expected a container image reference such as envoyproxy/envoy:v1.36.2'],
    [{ ...file('proxy:\n  imgae: x\n'), env: {} }, 'config file injector.yaml: unknown config key proxy.imgae (did you mean proxy.image?)'],
    [{ ...file('server: [1, 2]\n'), env: {} }, 'config file injector.yaml: expected a mapping of config keys'],
    [{ ...file('server:\n  port: [\n'), env: {} }, 'config file injector.yaml is not valid YAML'],
    [{ file: '/no/such/config.yaml', env: {} }, 'cannot read config file /no/such/config.yaml: no such file'],
    [{ env: { ENVOY_INJECTOR_PROXY_RESOURCES_REQUESTS_MEMORY: '2Gi' } }, 'invalid config proxy.resources.requests.memory="2Gi": expected no more than proxy.resources.limits.memory (1Gi)'],
    [{ env: { ENVOY_INJECTOR_TRAFFIC_EXCLUDE_OUTBOUND_IP_RANGES: '10.0.0.0/8,nope' } }, 'invalid config traffic.excludeOutboundIpRanges="10.0.0.0/8,nope"'],
    [{ env: { ENVOY_INJECTOR_PROXY_ADS_ADDRESS: 'no-port' } }, 'invalid config proxy.ads.address="no-port"'],
  ];
  for (const [options, message] of cases) {
    assert.throws(
      () => loadConfig(options),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError, String(error));
        assert.ok(error.message.startsWith(message), `${error.message}\n  does not start with\n${message}`);
        assert.doesNotMatch(error.message, /\n/);
        return true;
      },
    );
  }
});

test('lists are accepted as YAML sequences or comma-separated strings', () => {
  const a = loadConfig({ ...file('traffic:\n  excludeOutboundPorts: [3306, 5432]\n'), env: {} });
  const b = loadConfig({ env: { ENVOY_INJECTOR_TRAFFIC_EXCLUDE_OUTBOUND_PORTS: '3306,5432' } });
  assert.deepEqual(a.traffic.excludeOutboundPorts, [3306, 5432]);
  assert.deepEqual(b.traffic.excludeOutboundPorts, [3306, 5432]);
});

test('an empty file is the defaults', () => {
  assert.deepEqual(loadConfig({ ...file(''), env: {} }), loadConfig({ env: {} }));
});

test('lists are capped and a huge value is quoted shortened in the error', () => {
  const many = Array.from({ length: MAX_EXCLUDED_NAMESPACES + 1 }, (_, i) => `ns-${i}`).join(',');
  assert.throws(() => testConfig({ ENVOY_INJECTOR_EXCLUDED_NAMESPACES: many }), (error: Error) => {
    assert.match(error.message, /^invalid config excludedNamespaces="ns-0,ns-1,.*…" \(from env ENVOY_INJECTOR_EXCLUDED_NAMESPACES\): expected a list of at most 1000 Kubernetes namespace names$/);
    assert.ok(error.message.length < 300, 'one short line');
    return true;
  });
  const names = Array.from({ length: MAX_DNS_NAMES + 1 }, (_, i) => `n${i}.example.com`).join(',');
  assert.throws(() => testConfig({ ENVOY_INJECTOR_TLS_DNS_NAMES: names }), /expected a list of at most 100 DNS names or IP addresses$/);
  const ports = Array.from({ length: 300 }, (_, i) => String(i + 1)).join(',');
  assert.throws(() => testConfig({ ENVOY_INJECTOR_TRAFFIC_EXCLUDE_INBOUND_PORTS: ports }), /at most 256 ports .*\(this one has 300\)$/);
  assert.throws(() => testConfig({ ENVOY_INJECTOR_PROXY_IMAGE: 'a'.repeat(100_000) }), /in at most 32768 characters \(this value has 100000\)$/);
});

// Configuration: defaults, file, environment, and one clear line for every bad input.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
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
  assert.deepEqual(config.proxy.ads, { address: null, tls: false, caConfigMap: null, clientCertSecret: null });
  assert.deepEqual(config.proxy.mounts, []);
  assert.ok(Object.isFrozen(config) && Object.isFrozen(config.proxy.resources.requests));
});

test('the file is read over the defaults, and env over the file', () => {
  const yaml = 'server:\n  port: 9443\nproxy:\n  concurrency: 4\n  ads:\n    address: xds.mesh.svc:18000\nexcludedNamespaces: [a, b]\n';
  const config = loadConfig({ ...file(yaml), env: { ENVOY_INJECTOR_PROXY_CONCURRENCY: '8', POD_NAMESPACE: 'mesh' } });
  assert.equal(config.server.port, 9443);
  assert.equal(config.proxy.concurrency, 8);
  assert.deepEqual(config.proxy.ads, { address: 'xds.mesh.svc:18000', tls: false, caConfigMap: null, clientCertSecret: null });
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

test('an unknown ENVOY_INJECTOR_* variable is refused like an unknown key, naming the closest one', () => {
  assert.throws(
    () => loadConfig({ env: { ENVOY_INJECTOR_PROXY_IMGE: 'envoyproxy/envoy:v1.38.0' } }),
    (error: unknown) =>
      error instanceof ConfigError &&
      error.message ===
        "unknown environment variable ENVOY_INJECTOR_PROXY_IMGE (did you mean ENVOY_INJECTOR_PROXY_IMAGE?): it is no setting of the injector (see the README's Configuration)",
  );
  assert.throws(() => loadConfig({ env: { ENVOY_INJECTOR_SOMETHING_ELSE_ENTIRELY: '1' } }), /^ConfigError: unknown environment variable ENVOY_INJECTOR_SOMETHING_ELSE_ENTIRELY: it is/);
  // The config file's variable is one of the injector's, set or empty.
  assert.equal(loadConfig({ env: { ENVOY_INJECTOR_CONFIG: '' } }).server.port, 8443);
  assert.equal(loadConfig({ env: { ENVOY_INJECTOR_CONFIG: 'x.yaml' }, readFile: () => 'server: {port: 9443}\n' }).server.port, 9443);
});

test("Kubernetes' service link variables (a Service named envoy-injector or envoy-injector-*) never stop the start", () => {
  // What the kubelet sets in every pod of the namespace for `Service envoy-injector` (port https
  // 443 → 8443), unless the pod sets enableServiceLinks: false.
  const links = {
    ENVOY_INJECTOR_SERVICE_HOST: '10.96.12.34',
    ENVOY_INJECTOR_SERVICE_PORT: '443',
    ENVOY_INJECTOR_SERVICE_PORT_HTTPS: '443',
    ENVOY_INJECTOR_PORT: 'tcp://10.96.12.34:443',
    ENVOY_INJECTOR_PORT_443_TCP: 'tcp://10.96.12.34:443',
    ENVOY_INJECTOR_PORT_443_TCP_PROTO: 'tcp',
    ENVOY_INJECTOR_PORT_443_TCP_PORT: '443',
    ENVOY_INJECTOR_PORT_443_TCP_ADDR: '10.96.12.34',
  };
  assert.equal(loadConfig({ env: links }).server.port, 8443);
  // An IPv6 cluster, and another Service of the namespace (envoy-injector-metrics, port 9090 named metrics).
  const v6 = Object.fromEntries(Object.entries(links).map(([k, v]) => [k, v.replace('10.96.12.34', k.endsWith('HOST') || k.endsWith('ADDR') ? 'fd00::1234' : '[fd00::1234]')]));
  assert.equal(loadConfig({ env: v6 }).server.port, 8443);
  const metrics = {
    ENVOY_INJECTOR_METRICS_SERVICE_HOST: '10.96.0.7',
    ENVOY_INJECTOR_METRICS_SERVICE_PORT: '9090',
    ENVOY_INJECTOR_METRICS_SERVICE_PORT_METRICS: '9090',
    ENVOY_INJECTOR_METRICS_PORT: 'tcp://10.96.0.7:9090',
    ENVOY_INJECTOR_METRICS_PORT_9090_TCP: 'tcp://10.96.0.7:9090',
    ENVOY_INJECTOR_METRICS_PORT_9090_TCP_PROTO: 'tcp',
    ENVOY_INJECTOR_METRICS_PORT_9090_TCP_PORT: '9090',
    ENVOY_INJECTOR_METRICS_PORT_9090_TCP_ADDR: '10.96.0.7',
  };
  assert.equal(loadConfig({ env: { ...links, ...metrics, ENVOY_INJECTOR_SERVER_PORT: '9443' } }).server.port, 9443);
  // A link is known by its name and value together: a misspelt setting ending in _PORT is still caught.
  assert.throws(() => loadConfig({ env: { ENVOY_INJECTOR_SERVR_PORT: '9443' } }), /unknown environment variable ENVOY_INJECTOR_SERVR_PORT \(did you mean ENVOY_INJECTOR_SERVER_PORT\?\)/);
  assert.throws(() => loadConfig({ env: { ENVOY_INJECTOR_SERVICE_HOST: 'not-an-address' } }), /unknown environment variable ENVOY_INJECTOR_SERVICE_HOST/);
});

test('the tests and CI set no ENVOY_INJECTOR_* variable the injector does not read (test switches have their own names)', () => {
  const known = new Set(['ENVOY_INJECTOR_CONFIG', ...describeConfigKeys().map((k) => k.env)]);
  // These two files name unknown variables on purpose (above, and a table extended by a test).
  const deliberate = new Set(['config.test.ts', 'settings.test.ts']);
  const root = new URL('../', import.meta.url).pathname;
  const files = [
    ...readdirSync(join(root, 'test')).filter((f) => f.endsWith('.ts') && !deliberate.has(f)).map((f) => join(root, 'test', f)),
    ...readdirSync(join(root, 'test', 'support')).map((f) => join(root, 'test', 'support', f)),
    join(root, '.ci', 'run'),
  ];
  for (const path of files) {
    for (const [name] of readFileSync(path, 'utf8').matchAll(/ENVOY_INJECTOR_[A-Z0-9_]+/g)) {
      assert.ok(known.has(name) || name.endsWith('_'), `${path} uses ${name}, which the injector would refuse at start`);
    }
  }
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

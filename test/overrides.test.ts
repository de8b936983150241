// Per-pod overrides (SPEC.md §5): a table of every annotation with values it accepts (and what they
// become in the effective proxy config) and values it refuses (and the sentence saying what is
// accepted). Refusals are all reported together.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { admissionContext } from '../src/core/context.ts';
import { decide } from '../src/core/decide.ts';
import { defaultProxyConfig, formatAnnotationErrors, resolveSettings } from '../src/core/overrides.ts';
import { annotationKey, annotationNames } from '../src/core/settings.ts';
import type { EffectiveProxyConfig, InjectorConfig } from '../src/core/types.ts';
import { OVERRIDE_SETTINGS, type OverrideSetting } from './support/arbitrary-pod.ts';
import { MAX_CIDRS, MAX_PORTS, MAX_VALUE_LENGTH } from '../src/core/values.ts';
import { testConfig, testRuntime } from './support/config.ts';

const config = testConfig();
const base = defaultProxyConfig(config, testRuntime);
const overrideAnnotation = (setting: OverrideSetting): string => annotationKey(setting);

/** Resolves the pod annotations alone (no namespace annotations), as the tests below need. */
function resolveOverrides(annotations: Record<string, string>, withConfig: InjectorConfig = config, runtime = testRuntime) {
  const result = resolveSettings(annotations, undefined, withConfig, runtime);
  if (!result.ok) return result;
  const overrides = Object.fromEntries(result.settings.filter((s) => s.source === 'pod').map((s) => [annotationKey(s.setting.pod?.annotation ?? ''), s.text]));
  return { ok: true as const, config: result.proxy, overrides };
}

/** Where a setting lands in the effective config. */
const READ: { readonly [S in OverrideSetting]: (c: EffectiveProxyConfig) => unknown } = {
  'exclude-inbound-ports': (c) => c.traffic.excludeInboundPorts,
  'include-inbound-ports': (c) => c.traffic.includeInboundPorts,
  'exclude-outbound-ports': (c) => c.traffic.excludeOutboundPorts,
  'exclude-outbound-ip-ranges': (c) => c.traffic.excludeOutboundIpRanges,
  'include-outbound-ip-ranges': (c) => c.traffic.includeOutboundIpRanges,
  'proxy-image': (c) => c.image,
  'proxy-cpu': (c) => c.resources.requests.cpu,
  'proxy-memory': (c) => c.resources.requests.memory,
  'proxy-cpu-limit': (c) => c.resources.limits.cpu,
  'proxy-memory-limit': (c) => c.resources.limits.memory,
  'log-level': (c) => c.logLevel,
  concurrency: (c) => c.concurrency,
  'native-sidecar': (c) => c.nativeSidecar,
  'hold-application-until-proxy-starts': (c) => c.holdApplicationUntilProxyStarts,
  'drain-seconds': (c) => c.drainSeconds,
  ipv6: (c) => c.traffic.ipv6,
  'proxy-mounts': (c) => c.mounts,
  'ads-address': (c) => c.ads,
  'bootstrap-override': (c) => c.bootstrapOverrideConfigMap,
};

interface Row {
  readonly valid: readonly (readonly [string, unknown])[];
  readonly invalid: readonly string[];
  /** What the error says is accepted. */
  readonly accepted: RegExp;
}

const PORTS = /comma-separated list of at most 256 ports from 1 to 65535/;
const CIDRS = /comma-separated list of at most 512 IPv4\/IPv6 CIDRs/;
/** A list of `n` distinct ports, one more than a cap allows when n = cap + 1. */
const ports = (n: number) => Array.from({ length: n }, (_, i) => String(i + 1)).join(',');
const cidrs = (n: number) => Array.from({ length: n }, (_, i) => `10.0.${i >> 8}.${i & 255}/32`).join(',');

const TABLE: { readonly [S in OverrideSetting]: Row } = {
  'exclude-inbound-ports': {
    valid: [['8080', [8080]], ['8080, 9090,8080', [8080, 9090]], ['', []], ['65535', [65535]]],
    invalid: ['0', '65536', 'http', '80;81', '*', '-1', ports(MAX_PORTS + 1)],
    accepted: PORTS,
  },
  'include-inbound-ports': {
    valid: [['*', '*'], [' * ', '*'], ['8080,9090', [8080, 9090]], ['', []]],
    invalid: ['all', '8080,*', '99999', ports(MAX_PORTS + 1)],
    accepted: /"\*" for all ports, or a comma-separated list of at most 256 ports/,
  },
  'exclude-outbound-ports': {
    valid: [['5432', [5432]], ['5432,6379', [5432, 6379]], ['', []]],
    invalid: ['70000', '5432-5440', 'postgres'],
    accepted: PORTS,
  },
  'exclude-outbound-ip-ranges': {
    valid: [['169.254.169.254/32', ['169.254.169.254/32']], ['10.0.0.0/8, fd00::/8', ['10.0.0.0/8', 'fd00::/8']], ['192.168.1.1', ['192.168.1.1']], ['10.0.0.0/08', ['10.0.0.0/8']], ['', []]],
    invalid: ['10.0.0.0/33', '10.0.0', 'fd00::/129', '*', 'example.com/8', '10.0.0.0/8/8', 'fe80::1%eth0', 'fe80::%eth0/64', cidrs(MAX_CIDRS + 1)],
    accepted: CIDRS,
  },
  'include-outbound-ip-ranges': {
    valid: [['*', '*'], ['10.0.0.0/8', ['10.0.0.0/8']], ['', []]],
    invalid: ['everything', '10.0.0.0/8,*', '300.0.0.0/8', cidrs(MAX_CIDRS + 1)],
    accepted: /"\*" for all destinations, or a comma-separated list of at most 512 IPv4\/IPv6 CIDRs/,
  },
  'proxy-image': {
    valid: [
      ['envoyproxy/envoy:v1.38.4', 'envoyproxy/envoy:v1.38.4'],
      ['registry.example.com:5000/mirror/envoy:v1.39.6', 'registry.example.com:5000/mirror/envoy:v1.39.6'],
      [`envoyproxy/envoy@sha256:${'a'.repeat(64)}`, `envoyproxy/envoy@sha256:${'a'.repeat(64)}`],
      [' envoyproxy/envoy ', 'envoyproxy/envoy'],
    ],
    invalid: ['Envoy:latest', 'envoy proxy', '', 'envoy:', 'envoy@sha256:short', `envoy:${'x'.repeat(129)}`],
    accepted: /a container image reference such as envoyproxy\/envoy:v1\.36\.2/,
  },
  'proxy-cpu': {
    valid: [['100m', '100m'], ['2', '2'], ['0.5', '0.5'], ['1e0', '1e0']],
    invalid: ['half', '-1', '100 m', '1.5.5', '', '100mi', '1e3m'],
    accepted: /a Kubernetes CPU quantity such as 100m or 2/,
  },
  'proxy-memory': {
    valid: [['256Mi', '256Mi'], ['1Gi', '1Gi'], ['512M', '512M'], ['1000000', '1000000']],
    invalid: ['128MB', '1 Gi', 'lots', '-128Mi', '', '1gi', '128m', '0'],
    accepted: /a Kubernetes memory quantity in bytes such as 128Mi or 1Gi/,
  },
  'proxy-cpu-limit': {
    valid: [['1', '1'], ['1500m', '1500m']],
    invalid: ['one', '-1'],
    accepted: /a Kubernetes CPU quantity/,
  },
  'proxy-memory-limit': {
    valid: [['512Mi', '512Mi'], ['2Gi', '2Gi']],
    invalid: ['512MB', 'unlimited'],
    accepted: /a Kubernetes memory quantity/,
  },
  'log-level': {
    valid: [['debug', 'debug'], ['Warn', 'warning'], ['warning', 'warning'], ['TRACE', 'trace'], ['off', 'off'], ['critical', 'critical']],
    invalid: ['verbose', 'fatal', '', 'warnings'],
    accepted: /one of trace, debug, info, warning, error, critical, off/,
  },
  concurrency: {
    valid: [['0', 0], ['1', 1], ['4', 4], ['256', 256], [' 8 ', 8]],
    invalid: ['257', '-1', 'auto', '2.5', ''],
    accepted: /a whole number from 0 to 256/,
  },
  'native-sidecar': {
    valid: [['true', true], ['false', false], ['TRUE', true], [' False ', false]],
    invalid: ['yes', '1', 'on', ''],
    accepted: /"true" or "false"/,
  },
  'hold-application-until-proxy-starts': {
    valid: [['true', true], ['false', false]],
    invalid: ['1', 'no'],
    accepted: /"true" or "false"/,
  },
  'drain-seconds': {
    valid: [['0', 0], ['5', 5], ['3600', 3600]],
    invalid: ['5s', '3601', '-5', 'forever', '1.5'],
    accepted: /a whole number from 0 to 3600/,
  },
  ipv6: {
    valid: [['auto', 'auto'], ['true', 'true'], ['False', 'false'], [' TRUE ', 'true']],
    invalid: ['yes', 'on', '1', '', 'dual'],
    accepted: /"auto", "true" or "false"/,
  },
  'proxy-mounts': {
    valid: [
      ['', []],
      ['secret/web-tls=/etc/web/tls', [{ kind: 'secret', name: 'web-tls', path: '/etc/web/tls' }]],
      [
        ' configmap/lua.scripts=/etc/envoy-lua , Secret/ext-authz=/var/run/ext-authz',
        [
          { kind: 'configmap', name: 'lua.scripts', path: '/etc/envoy-lua' },
          { kind: 'secret', name: 'ext-authz', path: '/var/run/ext-authz' },
        ],
      ],
    ],
    invalid: [
      'secret/web-tls=etc/tls',
      'secret/x=/etc/envoy-bootstrap/x',
      'configmap/x=/etc',
      'secret/x=/etc/envoy-override',
      'secret/x=/etc/envoy-ads/ca',
      'volume/x=/x',
      'secret/X=/x',
      'secret/a=/x,configmap/b=/x/y',
      'secret/a=/x,configmap/b=/x',
      'secret/a=/x/../y',
      'secret/a=/x/',
      'secret/a=/x//y',
      'secret/a=/x:y',
      'secret/a=/x y',
      'secret/a=/',
      'secret/a=/proc/x',
      Array.from({ length: 17 }, (_, i) => `secret/s${i}=/m/${i}`).join(','),
    ],
    accepted: /comma-separated secret\/NAME=\/abs\/path or configmap\/NAME=\/abs\/path \(/,
  },
  'ads-address': {
    valid: [
      ['xds.cp.svc:15012', { address: 'xds.cp.svc:15012', tls: false, caConfigMap: null, clientCertSecret: null }],
      ['[fd00::20]:15012', { address: '[fd00::20]:15012', tls: false, caConfigMap: null, clientCertSecret: null }],
      ['', null],
    ],
    invalid: ['xds', 'xds:', 'xds:99999', '[fd00::20]', 'a b:1'],
    accepted: /host:port/,
  },
  'bootstrap-override': {
    valid: [['web-envoy', 'web-envoy'], [' grpc-web.v2 ', 'grpc-web.v2'], ['', null]],
    invalid: ['Web-Envoy', 'a_b', '-x', 'envoy.yaml/', 'x'.repeat(64)],
    accepted: /a Kubernetes object name/,
  },
};

test('the table covers every override annotation', () => {
  assert.deepEqual(Object.keys(TABLE).sort(), [...annotationNames()].sort());
});

for (const setting of OVERRIDE_SETTINGS) {
  const row = TABLE[setting];
  const annotation = overrideAnnotation(setting);
  test(`${annotation}: accepted values set the effective config`, () => {
    for (const [value, expected] of row.valid) {
      const result = resolveOverrides({ [annotation]: value });
      assert.ok(result.ok, `${JSON.stringify(value)} is accepted: ${result.ok ? '' : formatAnnotationErrors(result.errors)}`);
      assert.deepEqual(READ[setting](result.config), expected, `${JSON.stringify(value)}`);
      assert.deepEqual(result.overrides, { [annotation]: value }, 'the override is recorded as given');
    }
  });
  test(`${annotation}: refused values name the annotation, the value and what is accepted`, () => {
    for (const value of row.invalid) {
      const result = resolveOverrides({ [annotation]: value });
      assert.ok(!result.ok, `${JSON.stringify(value)} is refused`);
      assert.equal(result.errors.length, 1);
      const [error] = result.errors;
      assert.equal(error?.annotation, annotation);
      assert.equal(error?.value, value);
      assert.match(error?.accepted ?? '', row.accepted);
      // The message quotes at most 64 characters of the value (an annotation may hold 256 KiB).
      const quoted = value.length <= 64 ? value : `${value.slice(0, 63)}…`;
      assert.equal(formatAnnotationErrors(result.errors), `${annotation}=${JSON.stringify(quoted)} (accepted: ${error?.accepted})`);
    }
  });
}

test('lists at their caps are accepted, and one item more is refused with the count', () => {
  const at = resolveOverrides(
    { [overrideAnnotation('exclude-inbound-ports')]: ports(MAX_PORTS), [overrideAnnotation('exclude-outbound-ip-ranges')]: cidrs(MAX_CIDRS) },
    config,
    testRuntime,
  );
  assert.ok(at.ok);
  assert.equal(at.config.traffic.excludeInboundPorts.length, MAX_PORTS);
  assert.equal(at.config.traffic.excludeOutboundIpRanges.length, MAX_CIDRS);
  const over = resolveOverrides({ [overrideAnnotation('exclude-outbound-ports')]: `${ports(MAX_PORTS)},80` }, config, testRuntime);
  assert.ok(!over.ok);
  assert.match(over.errors[0]?.accepted ?? '', /\(this one has 257\)$/);
  // Repeats count: a cap on what is given, checked before anything is parsed.
  const repeated = resolveOverrides({ [overrideAnnotation('exclude-outbound-ports')]: Array(MAX_PORTS + 1).fill('80').join(',') }, config, testRuntime);
  assert.ok(!repeated.ok);
});

test('a value longer than any setting can be is refused unread, by name and with its length', () => {
  const value = `${'8'.repeat(MAX_VALUE_LENGTH)}0`;
  const annotations = Object.fromEntries(OVERRIDE_SETTINGS.map((s) => [overrideAnnotation(s), value]));
  const result = resolveOverrides(annotations, config, testRuntime);
  assert.ok(!result.ok);
  // Every one of them is refused (in the settings table's order).
  assert.deepEqual(result.errors.map((e) => e.annotation).sort(), OVERRIDE_SETTINGS.map(overrideAnnotation).sort());
  for (const error of result.errors) {
    assert.match(error.accepted, new RegExp(`in at most ${MAX_VALUE_LENGTH} characters \\(this value has ${MAX_VALUE_LENGTH + 1}\\)$`), error.annotation);
  }
  // The denial quotes 64 characters of each value, not 32 KiB.
  assert.ok(formatAnnotationErrors(result.errors).length < 400 * OVERRIDE_SETTINGS.length);
});

test('no annotation: the config defaults, unchanged', () => {
  const result = resolveOverrides({ 'app.kubernetes.io/name': 'web', 'envoy-injector.io/inject': 'true' });
  assert.ok(result.ok);
  assert.deepEqual(result.config, base);
  assert.deepEqual(result.overrides, {});
});

test('every bad annotation is reported at once, in one message, and the pod is denied', () => {
  const annotations = Object.fromEntries(OVERRIDE_SETTINGS.map((s) => [overrideAnnotation(s), TABLE[s].invalid[0] as string]));
  const result = resolveOverrides(annotations);
  assert.ok(!result.ok);
  // In the order of the settings table, whatever the order on the pod.
  assert.deepEqual(result.errors.map((e) => e.annotation), annotationNames().map(annotationKey));
  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', annotations }, spec: { containers: [{ name: 'a', image: 'a' }] } };
  const { decision } = decide(pod, admissionContext({ namespace: 'ns' }), config, testRuntime);
  assert.equal(decision.action, 'deny');
  assert.equal(decision.reasons.length, 1);
  assert.equal(decision.reasons[0]?.code, 'invalid-annotations');
  for (const setting of OVERRIDE_SETTINGS) assert.ok(decision.reasons[0]?.message.includes(`${overrideAnnotation(setting)}=`), setting);
});

test('a request above its limit is refused, naming the annotation that caused it', () => {
  const cases: readonly [Record<string, string>, string, RegExp][] = [
    // The config's memory limit is 1Gi: a larger request needs a larger limit too.
    [{ 'envoy-injector.io/proxy-memory': '2Gi' }, 'envoy-injector.io/proxy-memory', /memory request no larger than its limit \(request 2Gi, limit 1Gi; set envoy-injector\.io\/proxy-memory-limit as well\)/],
    [{ 'envoy-injector.io/proxy-memory-limit': '64Mi' }, 'envoy-injector.io/proxy-memory-limit', /request 128Mi, limit 64Mi\)/],
    [{ 'envoy-injector.io/proxy-cpu': '2', 'envoy-injector.io/proxy-cpu-limit': '500m' }, 'envoy-injector.io/proxy-cpu', /cpu request no larger than its limit \(request 2, limit 500m\)/],
  ];
  for (const [annotations, annotation, accepted] of cases) {
    const result = resolveOverrides(annotations);
    assert.ok(!result.ok, JSON.stringify(annotations));
    assert.equal(result.errors[0]?.annotation, annotation);
    assert.match(result.errors[0]?.accepted ?? '', accepted);
  }
  // Equal is fine, and a larger limit makes a larger request fine.
  assert.ok(resolveOverrides({ 'envoy-injector.io/proxy-cpu': '1', 'envoy-injector.io/proxy-cpu-limit': '1000m' }).ok);
  assert.ok(resolveOverrides({ 'envoy-injector.io/proxy-memory': '2Gi', 'envoy-injector.io/proxy-memory-limit': '2Gi' }).ok);
});

test('native-sidecar overrides the config both ways; `auto` follows what the cluster supports', () => {
  const native = testConfig({ ENVOY_INJECTOR_NATIVE_SIDECAR: 'true' });
  const off = resolveOverrides({ 'envoy-injector.io/native-sidecar': 'false' }, native);
  assert.ok(off.ok && off.config.nativeSidecar === false);
  const auto = testConfig({ ENVOY_INJECTOR_NATIVE_SIDECAR: 'auto' });
  assert.equal(defaultProxyConfig(auto, { ...testRuntime, nativeSidecarSupported: true }).nativeSidecar, true);
  assert.equal(defaultProxyConfig(auto, { ...testRuntime, nativeSidecarSupported: false }).nativeSidecar, false);
  // Asking for it where `auto` found no support is allowed, with a warning: the pod would hang in Init.
  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', annotations: { 'envoy-injector.io/native-sidecar': 'true' } }, spec: { containers: [{ name: 'a', image: 'a' }] } };
  const ctx = admissionContext({ namespace: 'ns' });
  const unsupported = decide(pod, ctx, auto, { ...testRuntime, nativeSidecarSupported: false });
  assert.equal(unsupported.decision.action, 'inject');
  assert.deepEqual(unsupported.warnings.map((w) => w.code), ['native-sidecar-unsupported']);
  assert.deepEqual(decide(pod, ctx, auto, { ...testRuntime, nativeSidecarSupported: true }).warnings, []);
  // An explicit nativeSidecar: "false" is the admin's choice, not a detection: no warning.
  assert.deepEqual(decide(pod, ctx, testConfig(), testRuntime).warnings, []);
});

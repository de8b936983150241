// `check` judges fetched objects with a pure function (src/check/assess.ts): these cases need no API
// server. Every finding carries a stable code from one table (src/check/findings.ts), as reasons do.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assessInstallation } from '../src/check/assess.ts';
import { FINDINGS } from '../src/check/findings.ts';
import type { InstallationObjects } from '../src/kube/installation.ts';
import { testConfig, testRuntime } from './support/config.ts';

const config = testConfig();
const now = new Date('2030-01-01T00:00:00Z');
const nothing: InstallationObjects = {
  webhookConfiguration: undefined,
  secretName: config.tls.secretName,
  secret: undefined,
  secretUnreadable: undefined,
  service: undefined,
  endpointSlices: [],
  labelledNamespaces: [],
  pods: [],
};

test('every finding code is kebab-case, with a check, a level and one sentence', () => {
  for (const [code, { check, level, sentence }] of Object.entries(FINDINGS)) {
    assert.match(code, /^[a-z]+(-[a-z0-9]+)*$/, code);
    assert.ok(['webhook-configuration', 'ca-bundle', 'service', 'nodes', 'namespaces', 'pods'].includes(check), code);
    assert.ok(['ok', 'info', 'warn', 'fail'].includes(level), code);
    assert.match(sentence, /^[A-Z].*\.$/, `${code}: one sentence`);
  }
});

test('nothing installed: each missing part is one finding with its code', () => {
  const findings = assessInstallation(nothing, config, testRuntime, { now });
  assert.deepEqual(
    findings.map((f) => [f.code, f.level]),
    [
      ['webhook-configuration-missing', 'fail'],
      ['secret-missing', 'fail'],
      ['service-missing', 'fail'],
      ['no-namespace-labelled', 'warn'],
    ],
  );
});

test('labelled namespaces: Pod Security that refuses envoy-init, and invalid defaults for their pods (SPEC.md §4b)', () => {
  const namespace = (name: string, labels: Record<string, string>, annotations: Record<string, string> = {}) => ({
    metadata: { name, labels: { 'envoy-injector.io/inject': 'enabled', ...labels }, annotations },
  });
  const findings = assessInstallation(
    {
      ...nothing,
      labelledNamespaces: [
        namespace('shop', { 'pod-security.kubernetes.io/enforce': 'restricted' }),
        namespace('api', {}, { 'envoy-injector.io/log-level': 'verbose', 'envoy-injector.io/drain-seconds': '9' }),
        namespace('kube-system', {}),
      ],
    },
    config,
    testRuntime,
    { now },
  ).filter((f) => f.check === 'namespaces');
  assert.deepEqual(
    findings.map((f) => f.code),
    ['namespaces-labelled', 'pod-security-enforced', 'capture-modes-admitted', 'namespace-annotation-invalid', 'namespaces-excluded'],
  );
  assert.match(findings[1]?.message ?? '', /^shop enforces Pod Security "restricted": every injected pod is refused there, .*use capture\.mode cni/);
  assert.equal(findings[2]?.message, 'both capture modes are admitted in: api');
  assert.match(findings[3]?.message ?? '', /^api: invalid defaults for its pods, .*envoy-injector\.io\/log-level="verbose" on namespace api \(accepted: one of trace/);
  assert.doesNotMatch(findings[3]?.message ?? '', /drain-seconds/, 'a valid default is not reported');
});

test('labelled namespaces in capture mode cni: which mode each admits, nothing refused (SPEC.md §4c)', () => {
  const namespace = (name: string, labels: Record<string, string>) => ({ metadata: { name, labels: { 'envoy-injector.io/inject': 'enabled', ...labels } } });
  const cni = testConfig({ ENVOY_INJECTOR_CAPTURE_MODE: 'cni' });
  const findings = assessInstallation(
    {
      ...nothing,
      labelledNamespaces: [
        namespace('shop', { 'pod-security.kubernetes.io/enforce': 'restricted' }),
        namespace('api', { 'pod-security.kubernetes.io/enforce': 'baseline' }),
        namespace('web', { 'pod-security.kubernetes.io/warn': 'restricted' }),
      ],
    },
    cni,
    testRuntime,
    { now },
  ).filter((f) => f.check === 'namespaces');
  assert.deepEqual(
    findings.map((f) => [f.code, f.level]),
    [
      ['namespaces-labelled', 'ok'],
      ['pod-security-cni-only', 'ok'],
      ['capture-modes-admitted', 'info'],
    ],
  );
  assert.equal(findings[1]?.message, 'injected pods are admitted in capture mode cni only (the mode in use) in: api (baseline), shop (restricted)');
  assert.equal(findings[2]?.message, 'both capture modes are admitted in: web');
});

test('pods: one not injected although it would be now is a failure; a summary per namespace', () => {
  const pod = { metadata: { name: 'web', namespace: 'shop' }, spec: { containers: [{ name: 'web', image: 'nginx' }] }, status: { phase: 'Running' } };
  const findings = assessInstallation(
    { ...nothing, pods: [{ key: 'shop/web', pod, namespaceLabels: { 'envoy-injector.io/inject': 'enabled' } }] },
    config,
    testRuntime,
    { now },
  ).filter((f) => f.check === 'pods');
  assert.deepEqual(findings.map((f) => f.code), ['pod-not-injected', 'pods-need-attention']);
  assert.equal(findings[1]?.message, 'shop: 1 running pod: 0 injected, 1 not injected');
});

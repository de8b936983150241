// The contract between the injector and init-iptables: the envoy-init container the injector builds
// from config and the per-pod traffic annotations (SPEC.md §4, §5) carries flags that
// `init-iptables` parses back into exactly that policy; invalid annotations deny the pod, listing
// every bad one.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { INIT_CONTAINER_NAME } from '../src/constants.ts';
import { admissionContext } from '../src/core/context.ts';
import { annotationKey } from '../src/core/settings.ts';
import { injectPod } from '../src/core/inject.ts';
import type { InjectorConfig, JsonObject, TrafficPolicy } from '../src/core/types.ts';
import { parseInitArgs } from '../src/iptables/options.ts';
import { testConfig, testRuntime } from './support/config.ts';

const CTX = admissionContext({ namespace: 'demo' });

function podWith(annotations: Record<string, string>): JsonObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web', annotations },
    spec: { containers: [{ name: 'web', image: 'nginx', ports: [{ containerPort: 8080 }] }] },
  };
}

/** Injects the pod and returns the envoy-init container's command, args and the policy they parse to. */
function initContainerOf(annotations: Record<string, string>, config: InjectorConfig = testConfig()) {
  const result = injectPod(podWith(annotations), CTX, config, testRuntime);
  assert.equal(result.decision.action, 'inject', JSON.stringify(result.decision.reasons));
  const spec = result.pod?.['spec'] as { initContainers: { name: string; command: string[]; args: string[] }[] };
  const init = spec.initContainers.find((c) => c.name === INIT_CONTAINER_NAME);
  assert.ok(init, 'envoy-init is injected');
  assert.deepEqual(init.command, ['envoy-injector']);
  assert.equal(init.args[0], 'init-iptables');
  const parsed = parseInitArgs(init.args.slice(1));
  assert.ok(parsed.ok && !parsed.help, `init-iptables accepts the injected args: ${JSON.stringify(parsed)}`);
  assert.equal(parsed.options.dryRun, false);
  assert.equal(parsed.options.backend, 'auto', 'the pod detects its backend');
  return { args: init.args, policy: parsed.options.policy };
}

const a = annotationKey;

test('each traffic annotation reaches init-iptables as its flag', () => {
  const cases: [string, Record<string, string>, string, Partial<TrafficPolicy>][] = [
    ['exclude-inbound-ports', { [a('exclude-inbound-ports')]: '9090, 9091' }, '--exclude-inbound-ports=9090,9091', { excludeInboundPorts: [9090, 9091] }],
    ['include-inbound-ports', { [a('include-inbound-ports')]: '8080' }, '--include-inbound-ports=8080', { includeInboundPorts: [8080] }],
    ['include-inbound-ports *', { [a('include-inbound-ports')]: '*' }, '--include-inbound-ports=*', { includeInboundPorts: '*' }],
    ['include-inbound-ports empty (no inbound capture)', { [a('include-inbound-ports')]: '' }, '--include-inbound-ports=', { includeInboundPorts: [] }],
    ['exclude-outbound-ports', { [a('exclude-outbound-ports')]: '5432' }, '--exclude-outbound-ports=5432', { excludeOutboundPorts: [5432] }],
    ['exclude-outbound-ip-ranges', { [a('exclude-outbound-ip-ranges')]: '169.254.169.254/32,fd00::/8' }, '--exclude-outbound-ip-ranges=169.254.169.254/32,fd00::/8', { excludeOutboundIpRanges: ['169.254.169.254/32', 'fd00::/8'] }],
    ['include-outbound-ip-ranges', { [a('include-outbound-ip-ranges')]: '10.96.0.0/12' }, '--include-outbound-ip-ranges=10.96.0.0/12', { includeOutboundIpRanges: ['10.96.0.0/12'] }],
    ['include-outbound-ip-ranges empty (no outbound capture)', { [a('include-outbound-ip-ranges')]: '' }, '--include-outbound-ip-ranges=', { includeOutboundIpRanges: [] }],
  ];
  for (const [name, annotations, flag, expected] of cases) {
    const { args, policy } = initContainerOf(annotations);
    assert.ok(args.includes(flag), `${name}: ${flag} in ${args.join(' ')}`);
    for (const [key, value] of Object.entries(expected)) {
      assert.deepEqual(policy[key as keyof TrafficPolicy], value, `${name}: ${key}`);
    }
  }
});

test('no annotation: the config decides, and the default policy is what init-iptables assumes', () => {
  const { policy } = initContainerOf({});
  assert.deepEqual(policy, {
    proxyUid: 1337,
    proxyGid: 1337,
    inboundCapturePort: 15006,
    outboundCapturePort: 15001,
    proxyPorts: [15000, 15001, 15006, 15021, 15090],
    includeInboundPorts: '*',
    excludeInboundPorts: [],
    excludeOutboundPorts: [],
    includeOutboundIpRanges: '*',
    excludeOutboundIpRanges: [],
    ipv6: 'auto',
  });
  const configured = initContainerOf(
    {},
    testConfig({ ENVOY_INJECTOR_TRAFFIC_EXCLUDE_OUTBOUND_IP_RANGES: '169.254.169.254/32', ENVOY_INJECTOR_PROXY_IPV6: 'false' }),
  );
  assert.deepEqual(configured.policy.excludeOutboundIpRanges, ['169.254.169.254/32']);
  assert.equal(configured.policy.ipv6, 'false', 'proxy.ipv6 reaches init-iptables as --ipv6');
  // …and so does the pod's own choice.
  assert.equal(initContainerOf({ [a('ipv6')]: 'true' }).policy.ipv6, 'true', 'the ipv6 annotation reaches init-iptables');
  // An annotation replaces the configured list for its pod.
  const overridden = initContainerOf(
    { [a('exclude-outbound-ip-ranges')]: '10.0.0.0/8' },
    testConfig({ ENVOY_INJECTOR_TRAFFIC_EXCLUDE_OUTBOUND_IP_RANGES: '169.254.169.254/32' }),
  );
  assert.deepEqual(overridden.policy.excludeOutboundIpRanges, ['10.0.0.0/8']);
});

test('invalid traffic annotations deny the pod with one message listing every one of them', () => {
  const bad = {
    [a('exclude-inbound-ports')]: '0',
    [a('include-inbound-ports')]: 'all',
    [a('exclude-outbound-ports')]: '80,http',
    [a('exclude-outbound-ip-ranges')]: '10.0.0.0/33',
    [a('include-outbound-ip-ranges')]: '*,10.0.0.0/8',
  };
  const result = injectPod(podWith(bad), CTX, testConfig(), testRuntime);
  assert.equal(result.decision.action, 'deny');
  assert.deepEqual(result.patch, []);
  const [only, ...others] = result.decision.reasons;
  assert.equal(others.length, 0, 'one reason');
  assert.equal(only?.code, 'invalid-annotations');
  for (const [key, value] of Object.entries(bad)) {
    assert.ok(only?.message.includes(`${key}=${JSON.stringify(value)} (accepted: `), `${key} is listed: ${only?.message}`);
  }
  // One valid annotation among them is not reported.
  const mixed = injectPod(podWith({ ...bad, [a('exclude-inbound-ports')]: '9090' }), CTX, testConfig(), testRuntime);
  assert.ok(!mixed.decision.reasons[0]?.message.includes(a('exclude-inbound-ports')));
});

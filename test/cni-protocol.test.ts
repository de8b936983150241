// The pure parts of CNI mode: the envoy-init check's probe destination (chosen from the pod's
// policy so that no exclusion can make it lie), the CNI protocol's parsing and results, and which
// pods the plugin owns.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseProbe } from '../src/iptables/capture-check.ts';
import { DEFAULT_TRAFFIC_POLICY } from '../src/core/init-flags.ts';
import { CniError, errorResult, parseCniArgs, parseConfig, passThrough, readEnvironment } from '../src/cni/protocol.ts';
import { podCapture } from '../src/cni/plugin.ts';
import { admissionContext } from '../src/core/context.ts';
import { injectPod } from '../src/core/inject.ts';
import type { TrafficPolicy } from '../src/core/types.ts';
import { testConfig, testRuntime } from './support/config.ts';

const policy = (over: Partial<TrafficPolicy>): TrafficPolicy => ({ ...DEFAULT_TRAFFIC_POLICY, ...over });

test('the probe goes where the policy captures: a documentation address, else inside the included ranges minus the excluded', () => {
  const cases: [string, Partial<TrafficPolicy>, ReturnType<typeof chooseProbe>][] = [
    ['everything captured', {}, { check: true, address: '192.0.2.1', port: 80 }],
    ['192.0.2.0/24 and port 80 excluded', { excludeOutboundIpRanges: ['192.0.2.0/24'], excludeOutboundPorts: [80] }, { check: true, address: '198.51.100.1', port: 443 }],
    ['only 10.0.0.0/8, less 10.0.0.0/9', { includeOutboundIpRanges: ['10.0.0.0/8'], excludeOutboundIpRanges: ['10.0.0.0/9'] }, { check: true, address: '10.191.255.255', port: 80 }],
    ['a single included address', { includeOutboundIpRanges: ['10.1.2.3/32'] }, { check: true, address: '10.1.2.3', port: 80 }],
    ['IPv6 ranges only', { includeOutboundIpRanges: ['fd00::/8'] }, { check: false, reason: 'the pod captures no outbound IPv4 traffic (include-outbound-ip-ranges holds no IPv4 range)' }],
    ['no outbound capture', { includeOutboundIpRanges: [] }, { check: false, reason: 'the pod captures no outbound IPv4 traffic (include-outbound-ip-ranges holds no IPv4 range)' }],
    ['everything excluded', { excludeOutboundIpRanges: ['0.0.0.0/1', '128.0.0.0/1'] }, { check: false, reason: 'every outbound IPv4 destination of the pod is excluded from capture' }],
    ['only loopback included', { includeOutboundIpRanges: ['127.0.0.0/8'] }, { check: false, reason: 'every outbound IPv4 destination of the pod is excluded from capture' }],
  ];
  for (const [name, over, expected] of cases) assert.deepEqual(chooseProbe(policy(over)), expected, name);
});

test('CNI environment and configuration: parsed, or one line with the spec error code', () => {
  assert.deepEqual(parseCniArgs('IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web'), { IgnoreUnknown: '1', K8S_POD_NAMESPACE: 'shop', K8S_POD_NAME: 'web' });
  const env = readEnvironment({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c', CNI_NETNS: '/n', CNI_IFNAME: 'eth0', CNI_ARGS: 'K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web' });
  assert.deepEqual(env.pod, { namespace: 'shop', name: 'web' });
  const codeOf = (f: () => unknown): number | undefined => {
    try {
      f();
    } catch (error) {
      return error instanceof CniError ? error.code : -1;
    }
    return undefined;
  };
  assert.equal(codeOf(() => readEnvironment({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c', CNI_IFNAME: 'eth0' })), 4);
  assert.equal(codeOf(() => readEnvironment({ CNI_COMMAND: 'BOGUS' })), 4);
  assert.equal(codeOf(() => readEnvironment({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c', CNI_IFNAME: 'eth0' })), undefined, 'DEL without a netns');
  assert.equal(codeOf(() => parseConfig('{')), 6);
  assert.equal(codeOf(() => parseConfig('{"cniVersion":"0.2.0"}')), 1);
  assert.equal(codeOf(() => parseConfig('{"cniVersion":"1.0.0","excludedNamespaces":"x"}')), 7);
  const config = parseConfig(JSON.stringify({
    cniVersion: '0.4.0',
    name: 'k8s',
    kubeconfig: '/etc/cni/net.d/k',
    prevResult: { cniVersion: '0.4.0', interfaces: [{ name: 'eth0' }], ips: [{ version: '4', address: '10.0.0.5/24' }], dns: {} },
    runtimeConfig: { 'io.kubernetes.cri.pod-annotations': { 'envoy-injector.io/status': '{}' } },
  }));
  assert.deepEqual(JSON.parse(passThrough(config)), config.prevResult, 'the previous result, unchanged');
  assert.deepEqual(config.podAnnotations, { 'envoy-injector.io/status': '{}' });
  assert.deepEqual(JSON.parse(errorResult('1.0.0', new CniError(100, 'one line'))), { cniVersion: '1.0.0', code: 100, msg: 'one line' });
});

test('the plugin owns only pods injected in cni mode, off the host network; their flags are envoy-init\'s with capture mode init', () => {
  const pod = (annotations: Record<string, string> = {}, spec: Record<string, unknown> = {}) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web', namespace: 'shop', annotations },
    spec: { containers: [{ name: 'app', image: 'app:1' }], ...spec },
  });
  const inject = (mode: 'init' | 'cni', annotations: Record<string, string> = {}) =>
    injectPod(pod(annotations), admissionContext({ namespace: 'shop' }), testConfig({ ENVOY_INJECTOR_CAPTURE_MODE: mode }), testRuntime).pod;
  assert.deepEqual(podCapture(pod()), { own: false, why: 'not injected' });
  assert.deepEqual(podCapture(inject('init')), { own: false, why: 'injected in capture mode init (envoy-init installs it)' });
  const owned = podCapture(inject('cni', { 'envoy-injector.io/exclude-outbound-ports': '5432,6379' }));
  assert.equal(owned.own, true);
  const flags = owned.own === true ? owned.flags : [];
  assert.ok(flags.includes('--capture-mode=init'));
  assert.ok(flags.includes('--exclude-outbound-ports=5432,6379'));
  assert.ok(!flags.some((f) => f.startsWith('--bootstrap-dir')), 'the bootstrap is envoy-init\'s');
  const hostNetwork = { ...(inject('cni') as Record<string, any>) };
  hostNetwork['spec'] = { ...hostNetwork['spec'], hostNetwork: true };
  assert.deepEqual(podCapture(hostNetwork), { own: false, why: 'on the host network' });
  const broken = structuredClone(inject('cni')) as Record<string, any>;
  broken['spec'].initContainers[0].args.push('--no-such-flag=1');
  assert.equal(podCapture(broken).own, 'broken');
});

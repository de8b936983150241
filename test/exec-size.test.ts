// What Linux lets an injected container start with (SPEC.md §6): every argument and environment
// string under 128 KiB after the kubelet's `$(VAR)` expansion, 1 MiB in all; a pod over it is denied
// naming the string and where it came from, instead of hanging in Init with E2BIG.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeExecSizeProblem, execSizeProblem, MAX_EXEC_TOTAL_BYTES } from '../src/core/exec-size.ts';
import { injectPod } from '../src/core/inject.ts';
import type { ResolvedSetting } from '../src/core/overrides.ts';
import { SETTING, type SettingSource } from '../src/core/settings.ts';
import { MAX_EXEC_STRING_BYTES } from '../src/core/sidecar.ts';
import type { Container, InjectorConfig } from '../src/core/types.ts';
import { MAX_CIDRS, MAX_PORTS } from '../src/core/values.ts';
import { testConfig, testRuntime } from './support/config.ts';

const ctx = { kind: 'Pod', operation: 'CREATE', namespace: 'demo' };
const pod = (annotations: Record<string, string> = {}) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web', annotations },
  spec: { containers: [{ name: 'web', image: 'nginx' }] },
});

const container = (args: string[], env: Container['env'] = []): Container => ({ name: 'c', image: 'i', command: ['run'], args, env });

test('strings within the limit pass; one byte over is named with its size', () => {
  // The NUL that ends each string counts: MAX - 1 characters fit exactly.
  assert.equal(execSizeProblem(container([`--exclude-outbound-ip-ranges=${'1'.repeat(MAX_EXEC_STRING_BYTES - 1 - 29)}`])), undefined);
  const problem = execSizeProblem(container([`--exclude-outbound-ip-ranges=${'1'.repeat(MAX_EXEC_STRING_BYTES - 29)}`]));
  assert.deepEqual(problem, {
    container: 'c',
    what: 'argument --exclude-outbound-ip-ranges',
    flag: 'exclude-outbound-ip-ranges',
    bytes: MAX_EXEC_STRING_BYTES + 1,
    limit: MAX_EXEC_STRING_BYTES,
  });
  // Multi-byte characters count in bytes, not characters.
  assert.equal(execSizeProblem(container([`x${'é'.repeat(MAX_EXEC_STRING_BYTES / 2)}`]))?.bytes, MAX_EXEC_STRING_BYTES + 2);
});

test("an argument is measured after the kubelet expands the container's own variables in it", () => {
  const big = 'b'.repeat(100 * 1024);
  // `NAME=value` fits, but the argument that references it twice does not.
  const problem = execSizeProblem(container(['$(BIG)$(BIG)'], [{ name: 'BIG', value: big }]));
  assert.equal(problem?.what, 'argument "$(BIG)$(BIG)"');
  // Any string holding a reference also gets the room left for downward-API values (4 KiB).
  assert.equal(problem?.bytes, 2 * big.length + 1 + 4096);
  // A downward-API variable's value is unknown: room is left for it.
  const downward: Container['env'] = [{ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }];
  assert.equal(execSizeProblem(container([`${'a'.repeat(MAX_EXEC_STRING_BYTES - 4096)}$(POD_NAME)`], downward))?.what, 'argument "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"');
  assert.equal(execSizeProblem(container([`${'a'.repeat(MAX_EXEC_STRING_BYTES - 5000)}$(POD_NAME)`], downward)), undefined);
});

test('environment strings count their name, and all strings together are bounded too', () => {
  const env = execSizeProblem(container([], [{ name: 'X', value: 'v'.repeat(MAX_EXEC_STRING_BYTES - 2) }]));
  assert.equal(env?.what, 'environment variable X');
  assert.equal(env?.bytes, MAX_EXEC_STRING_BYTES + 1);
  const many = Array.from({ length: 10 }, (_, i) => ({ name: `V${i}`, value: 'v'.repeat(MAX_EXEC_TOTAL_BYTES / 10) }));
  const total = execSizeProblem(container([], many));
  assert.equal(total?.what, 'arguments and environment');
  assert.equal(total?.limit, MAX_EXEC_TOTAL_BYTES);
});

test('the denial names the annotation a flag came from (the pod\'s or its namespace\'s), or the config key', () => {
  const problem = { container: 'envoy-init', what: 'argument --exclude-outbound-ip-ranges', flag: 'exclude-outbound-ip-ranges', bytes: 200_000, limit: MAX_EXEC_STRING_BYTES };
  const from = (source: SettingSource): ResolvedSetting[] => [{ setting: SETTING.excludeOutboundIpRanges, value: ['10.0.0.0/8'], source }];
  assert.equal(
    describeExecSizeProblem(problem, from('pod'), 'demo'),
    '(envoy-init argument --exclude-outbound-ip-ranges: 200000 bytes, over 131072.) It comes from the annotation envoy-injector.io/exclude-outbound-ip-ranges: shorten its list.',
  );
  assert.match(describeExecSizeProblem(problem, from('namespace'), 'demo'), /the annotation envoy-injector\.io\/exclude-outbound-ip-ranges of the namespace demo: shorten its list\.$/);
  assert.match(describeExecSizeProblem(problem, from('config'), 'demo'), /It comes from the injector's configuration \(traffic\.excludeOutboundIpRanges\), not from the pod\.$/);
  assert.doesNotMatch(describeExecSizeProblem({ ...problem, flag: 'proxy-uid', what: 'argument --proxy-uid' }, from('pod'), 'demo'), /comes from/);
});

test('envoy-init of a pod whose lists are all at their caps starts: the caps keep its arguments far below the limit', () => {
  const ports = Array.from({ length: MAX_PORTS }, (_, i) => String(65535 - i)).join(',');
  const cidrs = (prefix: string) => Array.from({ length: MAX_CIDRS }, (_, i) => `${prefix}:${i.toString(16)}:ffff:ffff:ffff:ffff:ffff:ffff/128`).join(',');
  const result = injectPod(
    pod({
      'envoy-injector.io/exclude-inbound-ports': ports,
      'envoy-injector.io/include-inbound-ports': ports,
      'envoy-injector.io/exclude-outbound-ports': ports,
      'envoy-injector.io/exclude-outbound-ip-ranges': cidrs('fd00'),
      'envoy-injector.io/include-outbound-ip-ranges': cidrs('fd01'),
    }),
    ctx,
    testConfig(),
    testRuntime,
  );
  assert.equal(result.decision.action, 'inject', JSON.stringify(result.decision.reasons));
  const init = (result.pod?.['spec'] as unknown as { initContainers: Container[] }).initContainers.find((c) => c.name === 'envoy-init');
  const longest = Math.max(...(init?.args ?? []).map((a) => Buffer.byteLength(a)));
  assert.ok(longest < MAX_EXEC_STRING_BYTES / 4, `longest argument ${longest} bytes`);
});

test('a config past the caps (built without loadConfig) is denied by name, not answered with a pod that cannot start', () => {
  const config = testConfig();
  const huge: InjectorConfig = {
    ...config,
    traffic: { ...config.traffic, excludeOutboundPorts: [], excludeOutboundIpRanges: Array.from({ length: 10_000 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`) },
  };
  const result = injectPod(pod(), ctx, huge, testRuntime);
  assert.equal(result.decision.action, 'deny');
  assert.deepEqual(result.patch, []);
  const [reason] = result.decision.reasons;
  assert.equal(reason?.code, 'exec-too-large');
  assert.match(reason?.message ?? '', /\(envoy-init argument --exclude-outbound-ip-ranges: \d+ bytes, over 131072\.\) It comes from the injector's configuration/);
});

// Everything that says an injected envoy container would start and do its job: its bootstrap
// strictly valid against Envoy's v3 protos and the rules protos cannot see, the injector's own
// contract on it (SPEC.md §4), and its command line against the flags Envoy accepts.
import assert from 'node:assert/strict';
import {
  BOOTSTRAP_DIR,
  BOOTSTRAP_FILES,
  BOOTSTRAP_VOLUME_NAME,
  INBOUND_PASSTHROUGH_SOURCE_V4,
  PORTS,
  PROMETHEUS_PATH,
  READINESS_PATH,
} from '../../src/constants.ts';
import { assertValidEnvoyMessage, formatViolations, type MessageNode } from './envoy-proto.ts';
import { bootstrapRuleViolations } from './envoy-proto-rules.ts';

type Obj = Record<string, any>;

export { BOOTSTRAP_TYPE } from '../../src/envoy/validate.ts';
import { BOOTSTRAP_TYPE } from '../../src/envoy/validate.ts';

/** Asserts `bootstrap` is valid for Envoy (protos and rules); returns the messages it holds. */
export function assertValidBootstrap(bootstrap: unknown): readonly MessageNode[] {
  const { messages } = assertValidEnvoyMessage(BOOTSTRAP_TYPE, bootstrap);
  const violations = bootstrapRuleViolations(messages);
  assert.equal(violations.length, 0, `bootstrap breaks Envoy's rules:\n${formatViolations(violations)}`);
  return messages;
}

const listenerOn = (bootstrap: Obj, port: number): Obj | undefined =>
  (bootstrap['static_resources']?.['listeners'] ?? []).find((l: Obj) => l['address']?.['socket_address']?.['port_value'] === port);

/** The admin path an HTTP listener routes to the admin cluster, if it does. */
function adminRoutePath(listener: Obj): string | undefined {
  const hcm = listener['filter_chains']?.[0]?.['filters']?.[0]?.['typed_config'];
  const route = hcm?.['route_config']?.['virtual_hosts']?.[0]?.['routes']?.[0];
  return route?.['route']?.['cluster'] === 'envoy_admin' ? route?.['match']?.['path'] : undefined;
}

/** Asserts the injector's own promises on a bootstrap (SPEC.md §4). */
export function assertBootstrapContract(bootstrap: Obj): void {
  assert.deepEqual(bootstrap['admin']?.['address']?.['socket_address'], { address: '127.0.0.1', port_value: PORTS.admin }, 'admin on 127.0.0.1:15000 only');
  const readiness = listenerOn(bootstrap, PORTS.readiness);
  assert.ok(readiness, 'a readiness listener on 15021');
  assert.equal(adminRoutePath(readiness), READINESS_PATH, 'readiness serves /ready from the admin interface');
  const prometheus = listenerOn(bootstrap, PORTS.prometheus);
  assert.ok(prometheus, 'a Prometheus listener on 15090');
  assert.equal(adminRoutePath(prometheus), PROMETHEUS_PATH, 'Prometheus scrapes /stats/prometheus from the admin interface');
  if (bootstrap['dynamic_resources'] !== undefined) return; // the control plane owns the capture listeners
  for (const [port, direction] of [[PORTS.outboundCapture, 'OUTBOUND'], [PORTS.inboundCapture, 'INBOUND']] as const) {
    const capture = listenerOn(bootstrap, port);
    assert.ok(capture, `a capture listener on ${port}`);
    assert.equal(capture['traffic_direction'], direction);
    assert.deepEqual(
      capture['listener_filters'].map((f: Obj) => f['typed_config']['@type']),
      ['type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst'],
      `${port} recovers the original destination`,
    );
  }
  const inbound = bootstrap['static_resources']['clusters'].find((c: Obj) => c['name'] === 'inbound_passthrough');
  assert.equal(inbound?.['upstream_bind_config']?.['source_address']?.['address'], INBOUND_PASSTHROUGH_SOURCE_V4, 'inbound passthrough leaves from 127.0.0.6');
}

/** Envoy's command-line flags the sidecar may use, with a check of each value (undefined: no value). */
const ENVOY_FLAGS: Readonly<Record<string, ((value: string) => boolean) | undefined>> = {
  '-c': (v) => v === `${BOOTSTRAP_DIR}/${BOOTSTRAP_FILES.bootstrap}`,
  '--log-level': (v) => ['trace', 'debug', 'info', 'warning', 'warn', 'error', 'critical', 'off'].includes(v),
  '--concurrency': (v) => /^[1-9]\d*$/.test(v),
  '--drain-time-s': (v) => /^\d+$/.test(v),
  '--drain-strategy': (v) => v === 'gradual' || v === 'immediate',
  '--disable-hot-restart': undefined,
  '--cpuset-threads': undefined,
};

/** Parses the envoy container's args against ENVOY_FLAGS; returns flag → value ('' for switches). */
export function parseEnvoyArgs(args: readonly string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const flag = args[i] as string;
    assert.ok(Object.hasOwn(ENVOY_FLAGS, flag), `envoy does not know the flag ${flag}`);
    assert.ok(!flags.has(flag), `${flag} given twice`);
    const check = ENVOY_FLAGS[flag];
    if (check === undefined) {
      flags.set(flag, '');
      continue;
    }
    const value = args[++i];
    assert.ok(value !== undefined && check(value), `${flag} has an invalid value ${JSON.stringify(value)}`);
    flags.set(flag, value);
  }
  return flags;
}

/** Asserts the envoy container would start Envoy with its bootstrap and be probed right. */
export function assertEnvoyContainer(container: Obj, native: boolean): void {
  assert.deepEqual(container['command'], ['envoy']);
  const flags = parseEnvoyArgs(container['args']);
  assert.ok(flags.has('-c'), 'the bootstrap envoy-init rendered is passed with -c');
  assert.ok(flags.has('--disable-hot-restart'));
  assert.ok(flags.has('--concurrency') !== flags.has('--cpuset-threads'), 'either a fixed concurrency or one worker per CPU of the cpuset');

  // The bootstrap comes from the emptyDir envoy-init writes, which envoy only reads (the API
  // server's ServiceAccount plugin may add its token's mount after it).
  assert.deepEqual(container['volumeMounts']?.[0], { name: BOOTSTRAP_VOLUME_NAME, mountPath: BOOTSTRAP_DIR, readOnly: true });
  assert.ok(
    (container['volumeMounts'] as Obj[]).slice(1).every((m) => m['name'] !== BOOTSTRAP_VOLUME_NAME && m['mountPath'] !== BOOTSTRAP_DIR),
    'the bootstrap is mounted once',
  );
  assert.equal(container['env'], undefined, 'envoy needs no environment: envoy-init rendered everything');

  // Probes and declared ports point at the listeners the bootstrap opens.
  const ready = { path: READINESS_PATH, port: PORTS.readiness, scheme: 'HTTP' };
  assert.deepEqual(container['readinessProbe']?.['httpGet'], ready);
  const ports = (container['ports'] as Obj[]).map((p) => p['containerPort']);
  assert.deepEqual(ports, [PORTS.readiness, PORTS.prometheus]);
  const lifecycle: Obj = container['lifecycle'] ?? {};
  if (native) {
    assert.equal(container['restartPolicy'], 'Always');
    assert.deepEqual(container['startupProbe']?.['httpGet'], ready, 'the startup probe gates the app on readiness');
    // Kubernetes stops a native sidecar only after the app containers: no hook needed either way.
    assert.equal(lifecycle['postStart'], undefined);
    assert.equal(lifecycle['preStop'], undefined);
  } else {
    assert.equal(container['restartPolicy'], undefined);
    assert.equal(container['startupProbe'], undefined);
    // The hooks run the scripts envoy-init wrote beside the bootstrap.
    const postStart: string[] | undefined = lifecycle['postStart']?.['exec']?.['command'];
    if (postStart !== undefined) assert.deepEqual(postStart, ['bash', `${BOOTSTRAP_DIR}/${BOOTSTRAP_FILES.hold}`]);
    const preStop: string[] | undefined = lifecycle['preStop']?.['exec']?.['command'];
    const drain = flags.get('--drain-time-s');
    if (preStop !== undefined) {
      assert.deepEqual(preStop, ['bash', `${BOOTSTRAP_DIR}/${BOOTSTRAP_FILES.drain}`, drain], 'the preStop hook waits as long as Envoy drains');
    } else assert.equal(drain, '0', 'no preStop hook only when there is nothing to drain');
  }
}

// Everything that says an injected envoy container would start and do its job: its bootstrap
// strictly valid against Envoy's v3 protos and the rules protos cannot see, the injector's own
// contract on it (SPEC.md §4), and its command line against the flags Envoy accepts.
import assert from 'node:assert/strict';
import {
  BOOTSTRAP_ENV,
  INBOUND_PASSTHROUGH_SOURCE_V4,
  PORTS,
  PROMETHEUS_PATH,
  READINESS_PATH,
} from '../../src/constants.ts';
import { assertValidEnvoyMessage, formatViolations, type MessageNode } from './envoy-proto.ts';
import { bootstrapRuleViolations } from './envoy-proto-rules.ts';

type Obj = Record<string, any>;

export const BOOTSTRAP_TYPE = 'envoy.config.bootstrap.v3.Bootstrap';

/** Linux refuses to exec a single argument or environment string longer than this (MAX_ARG_STRLEN). */
export const MAX_ARG_STRLEN = 32 * 4096;

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
  '--config-yaml': (v) => v === `$(${BOOTSTRAP_ENV})`,
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

/** Names of the `$(NAME)` references the kubelet would expand in `text` (`$$` escapes a `$`). */
export function liveEnvReferences(text: string): string[] {
  const names: string[] = [];
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== '$') continue;
    if (text[i + 1] === '$') {
      i++;
    } else if (text[i + 1] === '(') {
      const end = text.indexOf(')', i + 2);
      if (end === -1) break;
      names.push(text.slice(i + 2, end));
      i = end;
    }
  }
  return names;
}

/** Longest values the downward API can give, to bound the size of the expanded bootstrap. */
const LONGEST_DOWNWARD_VALUES: Readonly<Record<string, string>> = {
  POD_NAME: 'p'.repeat(253),
  POD_NAMESPACE: 'n'.repeat(63),
  INSTANCE_IPS: '255.255.255.255,ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
  NODE_NAME: 'n'.repeat(253),
  SERVICE_ACCOUNT: 's'.repeat(253),
};

/** Asserts the envoy container would start Envoy with its bootstrap and be probed right. */
export function assertEnvoyContainer(container: Obj, native: boolean): void {
  assert.deepEqual(container['command'], ['envoy']);
  const flags = parseEnvoyArgs(container['args']);
  assert.ok(flags.has('--config-yaml'), 'the bootstrap is passed with --config-yaml');
  assert.ok(flags.has('--disable-hot-restart'));
  assert.ok(flags.has('--concurrency') !== flags.has('--cpuset-threads'), 'either a fixed concurrency or one worker per CPU of the cpuset');

  // The bootstrap's references name only variables defined before it, from the downward API.
  const env: Obj[] = container['env'];
  const index = env.findIndex((e) => e['name'] === BOOTSTRAP_ENV);
  assert.ok(index >= 0, `${BOOTSTRAP_ENV} is set`);
  const raw: string = env[index]?.['value'];
  const earlier = new Map(env.slice(0, index).map((e) => [e['name'], e]));
  for (const name of liveEnvReferences(raw)) {
    assert.ok(earlier.get(name)?.['valueFrom']?.['fieldRef'], `$(${name}) refers to a downward-API variable defined before ${BOOTSTRAP_ENV}`);
  }
  // Expanded with the longest values, it must still fit one exec argument and one env string.
  let expanded = raw;
  for (const [name, value] of Object.entries(LONGEST_DOWNWARD_VALUES)) expanded = expanded.replaceAll(`$(${name})`, value);
  const bytes = Buffer.byteLength(`${BOOTSTRAP_ENV}=${expanded.replaceAll('$$', '$')}`) + 1;
  assert.ok(bytes < MAX_ARG_STRLEN, `${BOOTSTRAP_ENV} takes ${bytes} bytes; exec refuses more than ${MAX_ARG_STRLEN}`);

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
    for (const hook of ['postStart', 'preStop']) {
      if (lifecycle[hook] !== undefined) assert.equal(lifecycle[hook]['exec']['command'][0], 'bash', `${hook} runs bash`);
    }
    const preStop: string | undefined = lifecycle['preStop']?.['exec']?.['command']?.[2];
    const drain = flags.get('--drain-time-s');
    if (preStop !== undefined) assert.match(preStop, new RegExp(`sleep ${drain}$`), 'the preStop hook waits as long as Envoy drains');
    else assert.equal(drain, '0', 'no preStop hook only when there is nothing to drain');
  }
}

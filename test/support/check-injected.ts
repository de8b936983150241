// Invariants every injected pod must hold, checked for every pod the tests inject (goldens, corpus,
// HTTP and property tests). Failing any of them means the API server or the kubelet would refuse
// the pod, or the proxy would not start.
import assert from 'node:assert/strict';
import {
  BOOTSTRAP_DIR,
  BOOTSTRAP_VOLUME_NAME,
  INIT_CONTAINER_NAME,
  OVERRIDE_DIR,
  OVERRIDE_KEY,
  OVERRIDE_VOLUME_NAME,
  PODINFO_DIR,
  PODINFO_LABELS_FILE,
  PODINFO_VOLUME_NAME,
  PROXY_PORTS,
  SIDECAR_CONTAINER_NAME,
  STATUS_ANNOTATION,
} from '../../src/constants.ts';
import { DOWNWARD_ENV, type PodIdentity } from '../../src/core/bootstrap.ts';
import { initInputsOf, podOverrideSource, renderBootstrapFiles } from '../../src/core/pod-bootstrap.ts';
import { readPod } from '../../src/core/pod.ts';
import { parseStatus } from '../../src/core/status.ts';
import { assertBootstrapContract, assertEnvoyContainer, assertValidBootstrap } from './envoy-proto-check.ts';

type Obj = Record<string, any>;

/** Plausible facts of a running pod, as envoy-init reads them from the downward API. */
export function runningPodIdentity(pod: Obj): PodIdentity {
  return {
    name: 'pod-0',
    namespace: 'ns',
    instanceIps: '10.0.0.1,fd00::1',
    nodeName: 'node-1',
    serviceAccount: 'default',
    labels: pod['metadata']?.['labels'] ?? {},
  };
}

/**
 * Returns the bootstrap the injected pod's envoy-init writes (its own flags, read from the pod as
 * envoy-init parses them), for a running pod with `identity` and IPv6 as given.
 */
export function bootstrapOf(pod: Obj, options: { ipv6?: boolean; identity?: PodIdentity; version?: string; overrideText?: string } = {}): Obj {
  const read = readPod(pod);
  assert.ok(read.ok, 'the injected pod reads as a pod');
  const inputs = initInputsOf(read.pod);
  assert.ok(inputs?.ok, `envoy-init's flags parse: ${inputs?.ok === false ? inputs.error : 'no envoy-init'}`);
  const { bootstrap } = inputs.inputs;
  assert.ok(bootstrap, 'envoy-init is asked to render the bootstrap');
  const identity = options.identity ?? runningPodIdentity(pod);
  // A pod naming an override ConfigMap gets its envoy.yaml as given (an empty fragment otherwise).
  const configMap = inputs.inputs.proxy.bootstrapOverrideConfigMap;
  const podOverride = configMap === null ? undefined : { text: options.overrideText ?? '{}', source: podOverrideSource(configMap) };
  return renderBootstrapFiles({ ...inputs.inputs, bootstrap }, identity, options.ipv6 ?? true, options.version ?? '0.0.0-test', podOverride).bootstrap as Obj;
}

/** Asserts the invariants of an injected pod; returns its bootstrap for further checks. */
export function checkInjectedPod(pod: Obj, options: { overrideText?: string } = {}): Obj {
  const spec = pod['spec'];
  const init: Obj[] = spec['initContainers'] ?? [];
  const containers: Obj[] = spec['containers'];
  const all = [...init, ...containers];

  // Names are unique across init and app containers (the API server requires it).
  const names = all.map((c) => c['name']);
  assert.equal(new Set(names).size, names.length, `container names are unique: ${names.join(', ')}`);
  const volumes: Obj[] = spec['volumes'] ?? [];
  const volumeNames = volumes.map((v) => v['name']);
  assert.equal(new Set(volumeNames).size, volumeNames.length, 'volume names are unique');

  // Exactly one envoy and one envoy-init, and the status annotation describes them.
  assert.equal(names.filter((n) => n === SIDECAR_CONTAINER_NAME).length, 1);
  assert.equal(names.filter((n) => n === INIT_CONTAINER_NAME).length, 1);
  const status = parseStatus(pod['metadata']['annotations'][STATUS_ANNOTATION]);
  assert.ok(status, 'the status annotation parses');
  for (const name of status.initContainers) assert.ok(init.some((c) => c['name'] === name), `init container ${name} present`);
  for (const name of status.containers) assert.ok(containers.some((c) => c['name'] === name), `container ${name} present`);
  for (const name of status.volumes) assert.ok(volumeNames.includes(name), `volume ${name} present`);

  // Nothing running beside the proxy listens on its TCP ports (UDP/SCTP cannot clash; a plain init
  // container before a classic proxy has finished when it starts).
  const nativeProxy = init.some((c) => c['name'] === SIDECAR_CONTAINER_NAME);
  for (const c of [...init.filter((c) => nativeProxy || c['restartPolicy'] === 'Always'), ...containers]) {
    if (c['name'] === SIDECAR_CONTAINER_NAME) continue;
    for (const p of c['ports'] ?? []) {
      if ((p['protocol'] ?? 'TCP') !== 'TCP') continue;
      assert.ok(!PROXY_PORTS.includes(p['containerPort']), `${c['name']} does not use a proxy port`);
    }
  }

  // Every mount refers to a volume of the pod.
  for (const c of all) {
    for (const m of c['volumeMounts'] ?? []) {
      if ([SIDECAR_CONTAINER_NAME, INIT_CONTAINER_NAME].includes(c['name'])) {
        assert.ok(volumeNames.includes(m['name']), `${c['name']} mounts existing volume ${m['name']}`);
      }
    }
  }

  // envoy-init's flags parse back to a policy and a bootstrap request for the injected volumes;
  // it gets the pod's facts from the downward API; the order rules of SPEC.md §4 hold.
  const initContainer = init.find((c) => c['name'] === INIT_CONTAINER_NAME) as Obj;
  assert.equal(initContainer['args'][0], 'init-iptables');
  for (const arg of (initContainer['args'] as string[]).slice(1)) assert.match(arg, /^--[a-z0-9-]+=/s, `flag ${arg} is --name=value`);
  const read = readPod(pod);
  assert.ok(read.ok);
  const inputs = initInputsOf(read.pod);
  assert.ok(inputs?.ok, `envoy-init flags parse: ${inputs?.ok === false ? inputs.error : 'no envoy-init'}`);
  assert.equal(inputs.inputs.bootstrap?.dir, BOOTSTRAP_DIR);
  assert.equal(inputs.inputs.bootstrap?.podLabelsPath, `${PODINFO_DIR}/${PODINFO_LABELS_FILE}`);
  // (As the core builds them, or as the API server stores them, with its defaults such as apiVersion v1.)
  assert.deepEqual(
    (initContainer['env'] as Obj[]).map((e) => [e['name'], e['valueFrom']?.['fieldRef']?.['fieldPath']]),
    DOWNWARD_ENV.map(({ name, fieldPath }) => [name, fieldPath]),
    'envoy-init reads the pod facts from the downward API',
  );
  const mounts: Obj[] = initContainer['volumeMounts'];
  assert.ok(mounts.some((m) => m['name'] === BOOTSTRAP_VOLUME_NAME && m['mountPath'] === BOOTSTRAP_DIR && m['readOnly'] !== true), 'envoy-init writes the bootstrap volume');
  assert.ok(mounts.some((m) => m['name'] === PODINFO_VOLUME_NAME && m['mountPath'] === PODINFO_DIR), 'envoy-init reads the labels');
  const podinfo = volumes.find((v) => v['name'] === PODINFO_VOLUME_NAME);
  assert.deepEqual(
    (podinfo?.['downwardAPI']?.['items'] as Obj[]).map((i) => [i['path'], i['fieldRef']?.['fieldPath']]),
    [[PODINFO_LABELS_FILE, 'metadata.labels']],
  );
  assert.deepEqual(volumes.find((v) => v['name'] === BOOTSTRAP_VOLUME_NAME)?.['emptyDir'], {});
  const envoyIsInit = init.some((c) => c['name'] === SIDECAR_CONTAINER_NAME);
  if (envoyIsInit) {
    assert.equal(init[0]?.['name'], INIT_CONTAINER_NAME, 'native: envoy-init first');
    assert.equal(init[1]?.['name'], SIDECAR_CONTAINER_NAME, 'native: envoy second');
    assert.equal(init[1]?.['restartPolicy'], 'Always');
  } else {
    assert.equal(init[init.length - 1]?.['name'], INIT_CONTAINER_NAME, 'classic: envoy-init last');
    assert.equal(containers[0]?.['name'], SIDECAR_CONTAINER_NAME, 'classic: envoy first');
  }

  // Envoy would start with what envoy-init renders, in a pod with IPv6 or without: strict against
  // its v3 protos, the rules they cannot express, the injector's contract, and a command line Envoy
  // accepts.
  // The override ConfigMap: a volume of its key only, not optional, that only envoy-init reads.
  const configMap = inputs.inputs.proxy.bootstrapOverrideConfigMap;
  const override = volumes.find((v) => v['name'] === OVERRIDE_VOLUME_NAME);
  if (configMap === null) assert.equal(override, undefined, 'no override volume without an override');
  else {
    // The API server adds defaultMode (0644) to what the injector wrote.
    const { defaultMode, ...written } = override?.['configMap'] ?? {};
    assert.ok(defaultMode === undefined || defaultMode === 0o644, `defaultMode ${defaultMode}`);
    assert.deepEqual(written, { name: configMap, items: [{ key: OVERRIDE_KEY, path: OVERRIDE_KEY }], optional: false });
    assert.ok(mounts.some((m) => m['name'] === OVERRIDE_VOLUME_NAME && m['mountPath'] === OVERRIDE_DIR && m['readOnly'] === true), 'envoy-init reads the override');
  }

  const bootstrap = bootstrapOf(pod, options);
  assertValidBootstrap(bootstrap);
  assertBootstrapContract(bootstrap);
  const ipv4Only = bootstrapOf(pod, { ...options, ipv6: false });
  assertValidBootstrap(ipv4Only);
  assertBootstrapContract(ipv4Only);
  assert.ok(!JSON.stringify(ipv4Only).includes('"::'), 'a pod without IPv6 gets no IPv6 address in its bootstrap');
  assertEnvoyContainer(all.find((c) => c['name'] === SIDECAR_CONTAINER_NAME) as Obj, envoyIsInit);
  return bootstrap;
}

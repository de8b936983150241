// Invariants every injected pod must hold, checked for every pod the tests inject (goldens, corpus,
// HTTP and property tests). Failing any of them means the API server or the kubelet would refuse
// the pod, or the proxy would not start.
import assert from 'node:assert/strict';
import {
  BOOTSTRAP_ENV,
  INIT_CONTAINER_NAME,
  PROXY_PORTS,
  SIDECAR_CONTAINER_NAME,
  STATUS_ANNOTATION,
} from '../../src/constants.ts';
import { expandEnvReferences } from '../../src/core/env-expansion.ts';
import { parseStatus } from '../../src/core/status.ts';
import { parseInitFlags } from '../../src/core/init-flags.ts';
import { assertBootstrapContract, assertEnvoyContainer, assertValidBootstrap } from './envoy-proto-check.ts';

type Obj = Record<string, any>;

/** Returns the bootstrap JSON of the injected envoy container, as the kubelet would pass it. */
export function bootstrapOf(pod: Obj): Obj {
  const containers: Obj[] = [...(pod['spec']['initContainers'] ?? []), ...pod['spec']['containers']];
  const envoy = containers.find((c) => c['name'] === SIDECAR_CONTAINER_NAME);
  assert.ok(envoy, 'the pod has an envoy container');
  const raw = (envoy['env'] as Obj[]).find((e) => e['name'] === BOOTSTRAP_ENV)?.['value'];
  assert.equal(typeof raw, 'string', `${BOOTSTRAP_ENV} is set`);
  // The kubelet expands the downward-API references; give them plausible values.
  const expanded = expandEnvReferences(raw as string, {
    POD_NAME: 'pod-0',
    POD_NAMESPACE: 'ns',
    INSTANCE_IPS: '10.0.0.1,fd00::1',
    NODE_NAME: 'node-1',
    SERVICE_ACCOUNT: 'default',
  });
  return JSON.parse(expanded) as Obj;
}

/** Asserts the invariants of an injected pod; returns its bootstrap for further checks. */
export function checkInjectedPod(pod: Obj): Obj {
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

  // envoy-init's flags parse back to a policy; the order rules of SPEC.md §4 hold.
  const initContainer = init.find((c) => c['name'] === INIT_CONTAINER_NAME) as Obj;
  assert.equal(initContainer['args'][0], 'init-iptables');
  const flags = Object.fromEntries(
    (initContainer['args'] as string[]).slice(1).map((arg) => {
      const match = /^--([^=]+)=(.*)$/s.exec(arg);
      assert.ok(match, `flag ${arg} is --name=value`);
      return [match[1], match[2]];
    }),
  );
  const parsed = parseInitFlags(flags);
  assert.ok(parsed.ok, `envoy-init flags parse: ${parsed.ok ? '' : parsed.error}`);
  const envoyIsInit = init.some((c) => c['name'] === SIDECAR_CONTAINER_NAME);
  if (envoyIsInit) {
    assert.equal(init[0]?.['name'], INIT_CONTAINER_NAME, 'native: envoy-init first');
    assert.equal(init[1]?.['name'], SIDECAR_CONTAINER_NAME, 'native: envoy second');
    assert.equal(init[1]?.['restartPolicy'], 'Always');
  } else {
    assert.equal(init[init.length - 1]?.['name'], INIT_CONTAINER_NAME, 'classic: envoy-init last');
    assert.equal(containers[0]?.['name'], SIDECAR_CONTAINER_NAME, 'classic: envoy first');
  }

  // Envoy would start with it: strict against its v3 protos, the rules they cannot express, the
  // injector's contract, and a command line Envoy accepts.
  const bootstrap = bootstrapOf(pod);
  assertValidBootstrap(bootstrap);
  assertBootstrapContract(bootstrap);
  assertEnvoyContainer(all.find((c) => c['name'] === SIDECAR_CONTAINER_NAME) as Obj, envoyIsInit);
  return bootstrap;
}

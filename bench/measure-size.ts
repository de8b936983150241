// Bytes injection adds to a pod (SPEC.md §4 "Size"): every byte is stored in etcd and sent on every
// watch of every pod. Measured on Istio's own `hello` test pod, as compact JSON of the injected pod
// minus that of the input, with a breakdown per field of what was added.
import { readFileSync } from 'node:fs';
import { importBuilt, ROOT } from './processes.ts';

type Obj = Record<string, any>;

/** The pod the figure is reported for: Istio's inject test `hello` (its Deployment's pod template). */
export const HELLO_POD_FILE = 'test/testdata/corpus/istio__istio__inject-hello.yaml';

/** What injection added to the hello pod, in bytes of compact JSON. */
export interface SizeFigures {
  readonly pod: string;
  readonly inputBytes: number;
  readonly injectedBytes: number;
  readonly addedBytes: number;
  /** Bytes of each added part: `envoy.args`, `envoy-init.env`, `volumes`, `annotations`, … (each as JSON, without its key). */
  readonly breakdown: Readonly<Record<string, number>>;
}

const bytes = (value: unknown): number => Buffer.byteLength(JSON.stringify(value));

/** Injects the hello pod with the built-in config (init image pinned as in the goldens) and measures what was added. */
export async function measurePodSize(): Promise<SizeFigures> {
  const { parseDocuments, findPodTargets } = await importBuilt<typeof import('../src/cli/documents.ts')>('cli/documents.js');
  const { injectPod } = await importBuilt<typeof import('../src/core/inject.ts')>('core/inject.js');
  const { admissionContext } = await importBuilt<typeof import('../src/core/context.ts')>('core/context.js');
  const { loadConfig } = await importBuilt<typeof import('../src/config.ts')>('config.js');
  const { INIT_CONTAINER_NAME, SIDECAR_CONTAINER_NAME } = await importBuilt<typeof import('../src/constants.ts')>('constants.js');
  // The goldens' config: classic sidecar (no cluster), envoy-init's image pinned to a test version.
  const config = loadConfig({
    env: { ENVOY_INJECTOR_NATIVE_SIDECAR: 'false', ENVOY_INJECTOR_INIT_IMAGE: 'ghcr.io/envoy-injector/envoy-injector:v0.0.0-test' },
  });
  const runtime = { version: '0.0.0-test', nativeSidecarSupported: false };
  const [document] = parseDocuments(readFileSync(`${ROOT}${HELLO_POD_FILE}`, 'utf8'), HELLO_POD_FILE);
  const [target] = findPodTargets(document?.toJS());
  if (target === undefined) throw new Error(`${HELLO_POD_FILE}: no pod template`);
  const result = injectPod(target.pod, admissionContext({ namespace: 'default', workloadKind: target.kind }), config, runtime);
  const injected = result.pod as Obj | undefined;
  if (injected === undefined) throw new Error(`${HELLO_POD_FILE} was not injected`);
  const breakdown: Record<string, number> = {};
  const spec = injected['spec'] as Obj;
  for (const container of [...(spec['initContainers'] ?? []), ...spec['containers']] as Obj[]) {
    if (container['name'] !== INIT_CONTAINER_NAME && container['name'] !== SIDECAR_CONTAINER_NAME) continue;
    for (const [field, value] of Object.entries(container)) breakdown[`${container['name']}.${field}`] = bytes(value);
  }
  const original = target.pod as Obj;
  breakdown['volumes'] = bytes(spec['volumes']) - bytes(original['spec']?.['volumes'] ?? []);
  breakdown['annotations'] = bytes(injected['metadata']?.['annotations']) - bytes(original['metadata']?.['annotations'] ?? {});
  const inputBytes = bytes(original);
  const injectedBytes = bytes(injected);
  return { pod: HELLO_POD_FILE, inputBytes, injectedBytes, addedBytes: injectedBytes - inputBytes, breakdown };
}

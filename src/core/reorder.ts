// Re-invocation (SPEC.md §3; the webhook has `reinvocationPolicy: IfNeeded`): another webhook that
// ran after this one may have added init containers where they break the injected pod, and this
// one is called again for exactly that case. With a classic sidecar, envoy-init must come last
// among the init containers: an init container after it (Vault's agent injector appends
// vault-agent-init, for one) runs with the traffic capture installed and no proxy yet, so every
// connection it makes fails. With a native sidecar, envoy must follow envoy-init directly: an init
// container between them runs captured before the proxy starts, failing the same way. (One placed
// before envoy-init runs on the plain network, as a classic pod's init containers do: that works,
// and is what such a webhook chose, so it is left there.) The fix is one JSON Patch `move`: minimal,
// and once applied the order is right, so a further re-invocation finds nothing to do.
import type { Operation } from 'fast-json-patch';
import { INIT_CONTAINER_NAME, SIDECAR_CONTAINER_NAME } from '../constants.ts';
import type { PodView } from './pod.ts';
import { reason, type Reason } from './reasons.ts';
import type { InjectionStatus } from './status.ts';
import type { Json, JsonObject } from './types.ts';

/** The order restored: the reason, the patch, and the pod it gives. */
export interface Reordering {
  readonly reason: Reason;
  readonly patch: readonly Operation[];
  readonly pod: JsonObject;
}

/** Returns the move that restores the order injection set, or undefined when the order is right. */
export function planReordering(pod: PodView, status: InjectionStatus): Reordering | undefined {
  const names = pod.initContainers.map((c) => c.name);
  const init = names.indexOf(INIT_CONTAINER_NAME);
  if (init < 0 || !status.initContainers.includes(INIT_CONTAINER_NAME)) return undefined;
  const native = status.initContainers.includes(SIDECAR_CONTAINER_NAME);
  let from: number;
  let to: number;
  let result: Reason;
  if (!native) {
    if (init === names.length - 1) return undefined;
    from = init;
    to = names.length - 1;
    result = reason('envoy-init-not-last', `(after it: ${names.slice(init + 1).join(', ')})`);
  } else {
    const envoy = names.indexOf(SIDECAR_CONTAINER_NAME);
    if (envoy <= init + 1) return undefined;
    from = envoy;
    to = init + 1;
    result = reason('envoy-not-after-envoy-init', `(between them: ${names.slice(init + 1, envoy).join(', ')})`);
  }
  // `move` removes, then adds at the index of the list as it is without the moved entry.
  const patch: Operation[] = [{ op: 'move', from: `/spec/initContainers/${from}`, path: `/spec/initContainers/${to}` }];
  const list = [...(pod.spec['initContainers'] as Json[])];
  const [moved] = list.splice(from, 1);
  list.splice(to, 0, moved as Json);
  return { reason: result, patch, pod: { ...pod.raw, spec: { ...pod.spec, initContainers: list } } };
}

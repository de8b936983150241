// The pod's bootstrap override ConfigMap as a volume of envoy-init (SPEC.md §4a). Only envoy-init
// reads it: it merges the fragment into the one bootstrap Envoy loads. Kept apart from the other
// injected volumes so that other mounts of the proxy do not touch these lines.
import { OVERRIDE_DIR, OVERRIDE_KEY, OVERRIDE_VOLUME_NAME } from '../constants.ts';
import type { EffectiveProxyConfig, Volume } from './types.ts';

/** Where envoy-init reads the fragment. */
export const OVERRIDE_FILE = `${OVERRIDE_DIR}/${OVERRIDE_KEY}`;

/**
 * The configMap volume of the pod's override, or none. Only its key `envoy.yaml`, and not
 * optional: a missing ConfigMap or key stops the pod before envoy-init runs, and the kubelet's
 * event names both (FailedMount).
 */
export function overrideVolumes(proxy: EffectiveProxyConfig): Volume[] {
  const name = proxy.bootstrapOverrideConfigMap;
  if (name === null) return [];
  return [{ name: OVERRIDE_VOLUME_NAME, configMap: { name, items: [{ key: OVERRIDE_KEY, path: OVERRIDE_KEY }], optional: false } }];
}

/** envoy-init's read-only mount of it, or none. */
export function overrideMounts(proxy: EffectiveProxyConfig): { name: string; mountPath: string; readOnly: true }[] {
  return proxy.bootstrapOverrideConfigMap === null ? [] : [{ name: OVERRIDE_VOLUME_NAME, mountPath: OVERRIDE_DIR, readOnly: true }];
}

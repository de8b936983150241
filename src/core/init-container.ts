// The envoy-init container: installs the pod's traffic capture with the project's own image.
import { INIT_CONTAINER_NAME, XTABLES_LOCK_VOLUME_NAME } from '../constants.ts';
import { renderInitFlags } from './init-flags.ts';
import { SETTINGS, type SettingsTable } from './settings.ts';
import type { Container, EffectiveProxyConfig, Volume } from './types.ts';
import { resourceRequirements } from './sidecar.ts';

/** Returns the envoy-init container that applies the pod's traffic policy with iptables. */
export function buildInitContainer(proxy: EffectiveProxyConfig, settings: SettingsTable = SETTINGS): Container {
  return {
    name: INIT_CONTAINER_NAME,
    image: proxy.initImage,
    imagePullPolicy: proxy.imagePullPolicy,
    command: ['envoy-injector'],
    args: ['init-iptables', ...renderInitFlags(proxy, settings)],
    resources: resourceRequirements(proxy.initResources),
    securityContext: {
      // iptables needs root in the pod's network namespace, but only NET_ADMIN and NET_RAW:
      // everything else is dropped, and runAsNonRoot is set explicitly so a pod-level
      // runAsNonRoot: true does not stop the container from starting.
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
      // The runtime's default syscall filter: iptables needs none of what it blocks, and without
      // it a node whose kubelet does not default seccomp runs the container unconfined.
      seccompProfile: { type: 'RuntimeDefault' },
    },
    // iptables takes the xtables lock in /run; an emptyDir keeps the root filesystem read-only.
    volumeMounts: [{ name: XTABLES_LOCK_VOLUME_NAME, mountPath: '/run' }],
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
}

/** Returns the volumes the injected containers need. */
export function buildVolumes(): Volume[] {
  return [{ name: XTABLES_LOCK_VOLUME_NAME, emptyDir: {} }];
}

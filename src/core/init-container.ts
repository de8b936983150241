// The envoy-init container: installs the pod's traffic capture with the project's own image, and
// renders the pod's Envoy bootstrap (and the classic sidecar's hook scripts) into the emptyDir the
// envoy container mounts.
import {
  BOOTSTRAP_DIR,
  BOOTSTRAP_VOLUME_NAME,
  INIT_CONTAINER_NAME,
  INIT_UNPRIVILEGED_UID,
  PODINFO_DIR,
  PODINFO_LABELS_FILE,
  PODINFO_VOLUME_NAME,
  XTABLES_LOCK_VOLUME_NAME,
} from '../constants.ts';
import { DOWNWARD_ENV } from './bootstrap.ts';
import { escapeEnvReferences } from './env-expansion.ts';
import { renderInitFlags, type BootstrapRequest } from './init-flags.ts';
import { overrideMounts, overrideVolumes } from './override-volume.ts';
import { SETTINGS, type SettingsTable } from './settings.ts';
import type { Container, EffectiveProxyConfig, Volume } from './types.ts';
import { resourceRequirements, restrictedSecurityContext } from './sidecar.ts';

/** What the bootstrap needs from the admission: the workload's name and the config hash. */
export interface AdmissionFacts {
  readonly workloadName: string;
  readonly configHash: string;
}

/** The bootstrap request the injector always renders: the injected volumes' paths and the admission's facts. */
export function bootstrapRequest(facts: AdmissionFacts): BootstrapRequest {
  return {
    dir: BOOTSTRAP_DIR,
    podLabelsPath: `${PODINFO_DIR}/${PODINFO_LABELS_FILE}`,
    workloadName: facts.workloadName,
    configHash: facts.configHash,
  };
}

/** Returns the envoy-init container that applies the pod's traffic policy and renders its bootstrap. */
export function buildInitContainer(proxy: EffectiveProxyConfig, facts: AdmissionFacts, settings: SettingsTable = SETTINGS): Container {
  return {
    name: INIT_CONTAINER_NAME,
    image: proxy.initImage,
    imagePullPolicy: proxy.imagePullPolicy,
    command: ['envoy-injector'],
    // The kubelet expands `$(VAR)` in args: no flag value may hold a live reference.
    args: ['init-iptables', ...renderInitFlags(proxy, bootstrapRequest(facts), settings)].map((arg) => escapeEnvReferences(arg)),
    // What only the running pod knows, for the bootstrap: the labels come from the podinfo volume
    // (the downward API cannot give them as one variable), the rest from here.
    env: DOWNWARD_ENV.map(({ name, fieldPath }) => ({ name, valueFrom: { fieldRef: { fieldPath } } })),
    resources: resourceRequirements(proxy.initResources),
    ...(proxy.captureMode === 'cni' ? unprivileged(proxy) : privileged(proxy)),
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
}

/** The mounts of envoy-init in both modes: the bootstrap it writes, the labels and the bootstrap override it reads. */
function bootstrapMounts(proxy: EffectiveProxyConfig): NonNullable<Container['volumeMounts']> {
  return [
    { name: BOOTSTRAP_VOLUME_NAME, mountPath: BOOTSTRAP_DIR },
    { name: PODINFO_VOLUME_NAME, mountPath: PODINFO_DIR, readOnly: true },
    ...overrideMounts(proxy),
  ];
}

/** `init` mode: envoy-init installs the capture itself, so it needs root in the pod's network namespace. */
function privileged(proxy: EffectiveProxyConfig): Pick<Container, 'securityContext' | 'volumeMounts'> {
  return {
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
    volumeMounts: [{ name: XTABLES_LOCK_VOLUME_NAME, mountPath: '/run' }, ...bootstrapMounts(proxy)],
  };
}

/**
 * `cni` mode (SPEC.md §4c): the node's CNI plugin installed the capture before any container ran,
 * so envoy-init only renders the bootstrap and checks the capture with an ordinary connection —
 * everything Pod Security `restricted` asks for. Not UID/GID 1337: the capture lets the proxy's
 * traffic through, so the check would pass without any capture.
 */
function unprivileged(proxy: EffectiveProxyConfig): Pick<Container, 'securityContext' | 'volumeMounts'> {
  return {
    securityContext: restrictedSecurityContext(INIT_UNPRIVILEGED_UID, INIT_UNPRIVILEGED_UID),
    volumeMounts: bootstrapMounts(proxy),
  };
}

/** Returns the volumes the injected containers need (no xtables lock where envoy-init runs no iptables). */
export function buildVolumes(proxy: EffectiveProxyConfig): Volume[] {
  return [
    ...(proxy.captureMode === 'init' ? [{ name: XTABLES_LOCK_VOLUME_NAME, emptyDir: {} }] : []),
    // Outlives container restarts (envoy's, and envoy-init's within one sandbox): the bootstrap stays.
    { name: BOOTSTRAP_VOLUME_NAME, emptyDir: {} },
    { name: PODINFO_VOLUME_NAME, downwardAPI: { items: [{ path: PODINFO_LABELS_FILE, fieldRef: { fieldPath: 'metadata.labels' } }] } },
    ...overrideVolumes(proxy),
  ];
}

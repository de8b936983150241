// The envoy sidecar container: native (an init container with restartPolicy Always) or classic
// (first of the pod's containers).
import type { V1HTTPGetAction, V1Probe, V1ResourceRequirements } from '@kubernetes/client-node';
import {
  BOOTSTRAP_ENV,
  PORTS,
  PROXY_GID,
  PROXY_UID,
  READINESS_PATH,
  SIDECAR_CONTAINER_NAME,
} from '../constants.ts';
import { DOWNWARD_ENV } from './bootstrap.ts';
import { escapeEnvReferences } from './env-expansion.ts';
import type { Container, EffectiveProxyConfig, JsonObject, ProxyResources } from './types.ts';

/** Seconds a classic sidecar's postStart hook waits for the proxy before failing the start. */
export const HOLD_TIMEOUT_SECONDS = 120;

/** Returns Kubernetes resource requirements, leaving out what is not set. */
export function resourceRequirements(resources: ProxyResources): V1ResourceRequirements {
  const list = (r: ProxyResources['requests']): Record<string, string> => ({
    ...(r.cpu === undefined ? {} : { cpu: r.cpu }),
    ...(r.memory === undefined ? {} : { memory: r.memory }),
  });
  const requests = list(resources.requests);
  const limits = list(resources.limits);
  return {
    ...(Object.keys(requests).length > 0 ? { requests } : {}),
    ...(Object.keys(limits).length > 0 ? { limits } : {}),
  };
}

function readinessGet(): V1HTTPGetAction {
  return { path: READINESS_PATH, port: PORTS.readiness, scheme: 'HTTP' };
}

// bash's /dev/tcp asks the readiness listener until it answers 200, so the kubelet starts the
// app containers only once the proxy is ready (postStart blocks the next container's start).
// Written without `$(`, which the kubelet would try to expand.
const HOLD_SCRIPT = [
  `until (exec 3<>/dev/tcp/127.0.0.1/${PORTS.readiness} &&`,
  `printf 'GET ${READINESS_PATH} HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 &&`,
  `head -n 1 <&3 | grep -q ' 200 ') 2>/dev/null; do`,
  `if [ "$SECONDS" -ge ${HOLD_TIMEOUT_SECONDS} ]; then echo "envoy not ready after ${HOLD_TIMEOUT_SECONDS}s" >&2; exit 1; fi;`,
  'sleep 0.5; done',
].join(' ');

/** Returns the envoy container that runs the proxy with the pod's bootstrap. */
export function buildSidecar(proxy: EffectiveProxyConfig, bootstrap: JsonObject): Container {
  const keep = DOWNWARD_ENV.map((e) => e.name);
  const lifecycle: NonNullable<Container['lifecycle']> = {};
  if (!proxy.nativeSidecar && proxy.holdApplicationUntilProxyStarts) {
    lifecycle.postStart = { exec: { command: ['bash', '-c', HOLD_SCRIPT] } };
  }
  // A classic sidecar gets SIGTERM together with the app: sleeping first keeps it serving the
  // app's in-flight requests. A native sidecar is stopped only after the app has exited.
  if (!proxy.nativeSidecar && proxy.drainSeconds > 0) {
    lifecycle.preStop = { exec: { command: ['sleep', String(proxy.drainSeconds)] } };
  }
  const readinessProbe: V1Probe = {
    httpGet: readinessGet(),
    periodSeconds: 2,
    timeoutSeconds: 1,
    failureThreshold: 3,
  };
  return {
    name: SIDECAR_CONTAINER_NAME,
    image: proxy.image,
    imagePullPolicy: proxy.imagePullPolicy,
    // The image's entrypoint script switches users, which a non-root container cannot do.
    command: ['envoy'],
    args: [
      '--config-yaml',
      `$(${BOOTSTRAP_ENV})`,
      '--log-level',
      proxy.logLevel,
      '--concurrency',
      String(proxy.concurrency),
      // Hot restart needs shared memory and a second process; pods restart containers instead.
      '--disable-hot-restart',
      '--drain-time-s',
      String(proxy.drainSeconds),
      '--drain-strategy',
      'immediate',
    ],
    env: [
      ...DOWNWARD_ENV.map(({ name, fieldPath }) => ({ name, valueFrom: { fieldRef: { fieldPath } } })),
      // Last, so the kubelet can expand the references to the variables above.
      // Indented so `kubectl get pod -o yaml` shows it as a readable block.
      { name: BOOTSTRAP_ENV, value: escapeEnvReferences(JSON.stringify(bootstrap, null, 2), keep) },
    ],
    ports: [
      { name: 'envoy-ready', containerPort: PORTS.readiness, protocol: 'TCP' },
      { name: 'envoy-prom', containerPort: PORTS.prometheus, protocol: 'TCP' },
    ],
    resources: resourceRequirements(proxy.resources),
    readinessProbe,
    ...(proxy.nativeSidecar
      ? {
          restartPolicy: 'Always',
          // Native sidecars: the kubelet starts the next container once this probe passes.
          startupProbe: { httpGet: readinessGet(), periodSeconds: 1, timeoutSeconds: 1, failureThreshold: HOLD_TIMEOUT_SECONDS },
        }
      : {}),
    ...(Object.keys(lifecycle).length > 0 ? { lifecycle } : {}),
    securityContext: {
      runAsUser: PROXY_UID,
      runAsGroup: PROXY_GID,
      runAsNonRoot: true,
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    },
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
}

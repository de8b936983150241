// The envoy sidecar container: native (an init container with restartPolicy Always) or classic
// (first of the pod's containers).
import type { V1HTTPGetAction, V1Probe, V1ResourceRequirements } from '@kubernetes/client-node';
import {
  BOOTSTRAP_DIR,
  BOOTSTRAP_FILES,
  BOOTSTRAP_VOLUME_NAME,
  PORTS,
  PROXY_GID,
  PROXY_UID,
  READINESS_PATH,
  SIDECAR_CONTAINER_NAME,
} from '../constants.ts';
import type { Container, EffectiveProxyConfig, ProxyResources } from './types.ts';

/**
 * Seconds the proxy has to become ready: a classic sidecar's postStart hook fails after it, a native
 * sidecar's startup probe gives up after it (with ADS, Envoy is ready only once the control plane
 * answered, or after its 15 s initial fetch timeout per resource type).
 */
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

// The lifecycle hooks speak HTTP through bash's /dev/tcp and read with bash's `read -t`, so they
// need only bash and sleep in the proxy image (envoyproxy/envoy has both; it has no curl). They are
// files envoy-init writes beside the bootstrap, so the pod spec carries their paths, not their text.

/**
 * Returns the classic sidecar's postStart script: it waits until the readiness listener answers
 * 200 (Envoy is LIVE), failing after `timeoutSeconds`. The kubelet starts the next container only
 * once postStart returns, so the app starts behind a ready proxy.
 */
export function holdScript(port: number = PORTS.readiness, timeoutSeconds: number = HOLD_TIMEOUT_SECONDS): string {
  return [
    '# envoy-injector: postStart hook of the classic envoy sidecar: wait until Envoy is ready.',
    // A subshell per attempt: a refused connection ends only the subshell; `read -t` bounds a hung answer.
    `until (exec 3<>/dev/tcp/127.0.0.1/${port} &&`,
    `  printf 'GET ${READINESS_PATH} HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 &&`,
    '  read -r -t 2 status <&3 && [[ "$status" == *" 200 "* ]]) 2>/dev/null; do',
    `  if [ "$SECONDS" -ge ${timeoutSeconds} ]; then echo "envoy not ready after ${timeoutSeconds}s" >&2; exit 1; fi`,
    '  sleep 0.5',
    'done',
    '',
  ].join('\n');
}

/**
 * Returns the classic sidecar's preStop script, run with the drain seconds as its argument. The
 * kubelet sends SIGTERM to the app and to Envoy together, and Envoy exits at once on SIGTERM; this
 * hook runs first and keeps Envoy up for that long while the app shuts down: it fails Envoy's
 * health (so /ready answers 503 DRAINING), starts a graceful drain of the inbound listeners (which
 * tells HTTP connections of an HTTP connection manager to close — a control plane's inbound HTTP
 * listeners; the injected tcp_proxy passthrough ignores it and its connections stay open until the
 * app closes them; `skip_exit` keeps Envoy running for the app's outbound calls), then waits, after
 * which the kubelet sends SIGTERM. README "What the drain does" says what it cannot do.
 */
export function drainScript(adminPort: number = PORTS.admin): string {
  return [
    '# envoy-injector: preStop hook of the classic envoy sidecar: drain, then wait $1 seconds.',
    `post() { (exec 3<>/dev/tcp/127.0.0.1/${adminPort} &&`,
    `  printf 'POST %s HTTP/1.1\\r\\nHost: localhost\\r\\nContent-Length: 0\\r\\nConnection: close\\r\\n\\r\\n' "$1" >&3 &&`,
    '  read -r -t 2 status <&3) 2>/dev/null; }',
    'post /healthcheck/fail',
    "post '/drain_listeners?inboundonly&graceful&skip_exit'",
    'sleep "${1:-0}"',
    '',
  ].join('\n');
}

/** Where a file envoy-init writes is, as the injected containers see it. */
export function bootstrapFilePath(file: keyof typeof BOOTSTRAP_FILES): string {
  return `${BOOTSTRAP_DIR}/${BOOTSTRAP_FILES[file]}`;
}

/** Returns Envoy's command-line arguments for `proxy`. */
export function envoyArgs(proxy: EffectiveProxyConfig): string[] {
  return [
    // The bootstrap envoy-init rendered into the emptyDir (JSON, by its extension).
    '-c',
    bootstrapFilePath('bootstrap'),
    '--log-level',
    proxy.logLevel,
    // --concurrency 0 would still mean one worker. Without the flag Envoy runs one worker per CPU;
    // --cpuset-threads counts the CPUs of the container's cpuset instead, which is every CPU of the
    // node unless the kubelet's static CPU manager pinned the container (a CPU limit does not count).
    ...(proxy.concurrency > 0 ? ['--concurrency', String(proxy.concurrency)] : ['--cpuset-threads']),
    // Hot restart needs shared memory and a second process; pods restart containers instead.
    '--disable-hot-restart',
    // The graceful drain the preStop hook starts (and listener updates from a control plane) lasts
    // this long; `immediate` asks every HTTP connection of an HTTP connection manager to close at
    // once rather than gradually (tcp_proxy connections are not drained by Envoy at all).
    '--drain-time-s',
    String(proxy.drainSeconds),
    '--drain-strategy',
    'immediate',
  ];
}

/** Linux's limit on one argument or environment string (MAX_ARG_STRLEN), terminating NUL included. */
export const MAX_EXEC_STRING_BYTES = 128 * 1024;

/** Returns the envoy container that runs the proxy with the bootstrap envoy-init rendered. */
export function buildSidecar(proxy: EffectiveProxyConfig): Container {
  const lifecycle: NonNullable<Container['lifecycle']> = {};
  // A native sidecar needs neither hook: the kubelet starts the next container once its startup
  // probe passes, and stops it only after every app container has exited.
  if (!proxy.nativeSidecar && proxy.holdApplicationUntilProxyStarts) {
    lifecycle.postStart = { exec: { command: ['bash', bootstrapFilePath('hold')] } };
  }
  if (!proxy.nativeSidecar && proxy.drainSeconds > 0) {
    lifecycle.preStop = { exec: { command: ['bash', bootstrapFilePath('drain'), String(proxy.drainSeconds)] } };
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
    args: envoyArgs(proxy),
    ports: [
      { name: 'envoy-ready', containerPort: PORTS.readiness, protocol: 'TCP' },
      { name: 'envoy-prom', containerPort: PORTS.prometheus, protocol: 'TCP' },
    ],
    resources: resourceRequirements(proxy.resources),
    readinessProbe,
    ...(proxy.nativeSidecar
      ? {
          restartPolicy: 'Always',
          // The kubelet starts the next container only once this probe passes. Every second (the
          // kubelet's finest period) so the app waits at most a second more than Envoy; the same
          // budget as the classic hold before the kubelet restarts a proxy that never got ready.
          startupProbe: { httpGet: readinessGet(), periodSeconds: 1, timeoutSeconds: 1, failureThreshold: HOLD_TIMEOUT_SECONDS },
        }
      : {}),
    ...(Object.keys(lifecycle).length > 0 ? { lifecycle } : {}),
    securityContext: restrictedSecurityContext(PROXY_UID, PROXY_GID),
    // Read-only: only envoy-init writes the bootstrap and the hooks.
    volumeMounts: [{ name: BOOTSTRAP_VOLUME_NAME, mountPath: BOOTSTRAP_DIR, readOnly: true }],
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
}

/**
 * The securityContext of a container that passes Pod Security `restricted`: non-root as uid/gid,
 * no capabilities, no privilege escalation, read-only root, and the runtime's default syscall
 * filter (neither Envoy nor envoy-init's capture check needs anything it blocks). Shared by
 * `envoy` and the unprivileged `envoy-init` of cni mode.
 */
export function restrictedSecurityContext(uid: number, gid: number): NonNullable<Container['securityContext']> {
  return {
    runAsUser: uid,
    runAsGroup: gid,
    runAsNonRoot: true,
    privileged: false,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

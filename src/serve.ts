// `envoy-injector serve`: load config, prepare TLS, listen, and shut down gracefully on SIGTERM.
import type { Server as TlsServer } from 'node:tls';
import type { KubeConfig } from '@kubernetes/client-node';
import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import type { InjectorConfig, InjectorRuntime } from './core/types.ts';
import { SERVER_DETECT_ATTEMPTS } from './kube/detect-options.ts';
import { NamespaceCache } from './kube/namespace-cache.ts';
import { findKubeConfigSources } from './kube/sources.ts';
import type { KubeResources } from './kube/resources.ts';
import { resolveRuntime } from './runtime.ts';
import { buildApp } from './server/app.ts';
import { createMetrics } from './server/metrics.ts';
import { createTlsSource, placeholderMaterial } from './tls/create.ts';
import { secureContextOptions, type ServingMaterial } from './tls/material.ts';
import type { TlsSource } from './tls/source.ts';
import { VERSION } from './version.ts';

/**
 * Creates the process logger: pino JSON lines on stdout, written synchronously. pino's default
 * asynchronous stream flushes what it buffered when the process exits, and on a broken stdout
 * (`serve | head -2`, a log collector gone) that flush retries EPIPE forever, so the process never
 * exited after SIGTERM. Written synchronously nothing is left to flush at exit, and the first
 * EPIPE turns logging off (pino's broken-pipe handling) instead of blocking.
 */
export function createLogger(config: InjectorConfig, dest: number | string = 1): Logger {
  return pino({ level: config.logLevel, base: { service: 'envoy-injector', version: VERSION } }, pino.destination({ dest, sync: true }));
}

/** What startInjector needs besides the config. */
export interface StartDeps {
  readonly logger: Logger;
  readonly runtime: InjectorRuntime;
  readonly kubeConfig?: KubeConfig | undefined;
  /** Overrides the API access built from kubeConfig (tests). */
  readonly resources?: KubeResources;
  /** The clock of the TLS source (tests). */
  readonly now?: () => Date;
  /** When the config was read (for the config load timestamp metric); defaults to now. */
  readonly configLoadedAt?: Date;
  /** The namespace watch cache to start and serve namespace defaults from (SPEC.md §4b); none: no namespace defaults. */
  readonly namespaces?: NamespaceCache;
  /** Liveness for /healthz (serve reports faults it must be restarted for); alive when absent. */
  readonly liveness?: () => { readonly ready: boolean; readonly reason?: string };
}

/** A listening webhook and the TLS source feeding it. */
export interface RunningInjector {
  readonly app: FastifyInstance;
  readonly tls: TlsSource;
  /** Stops the TLS source and closes the server after in-flight requests. */
  close(): Promise<void>;
}

/**
 * Starts the TLS source of the configured mode, builds the app on its certificate (or on a
 * placeholder while it has none, so /healthz answers and /readyz says why it is not ready), switches
 * the server's certificate whenever the source changes it, and listens.
 */
export async function startInjector(config: InjectorConfig, deps: StartDeps): Promise<RunningInjector> {
  const { logger } = deps;
  const tls = await createTlsSource(config, deps);
  await tls.start();
  const loaded = tls.current();
  if (loaded === undefined) {
    logger.warn({ reason: tls.readiness().reason }, 'no serving certificate yet: serving a placeholder and reporting not ready');
  }
  const initial = loaded ?? (await placeholderMaterial());
  // Expiry getters read the TLS source at every scrape, so reloads and renewals show at once.
  const { namespaces } = deps;
  const metrics = createMetrics({
    config,
    runtime: deps.runtime,
    configLoadedAt: deps.configLoadedAt ?? new Date(),
    certificates: { serving: () => tls.certificateNotAfter(), ca: () => tls.caNotAfter() },
    ...(namespaces === undefined ? {} : { namespaceCache: namespaces }),
  });
  namespaces?.onResync((reason) => metrics.recordNamespaceResync(reason));
  namespaces?.start();
  const app = buildApp({
    config,
    runtime: deps.runtime,
    logger,
    metrics,
    tls: { key: initial.key, cert: initial.cert },
    // Ready once TLS is, and — with a cluster — once the namespace cache has been filled.
    readiness: () => {
      const readiness = tls.readiness();
      return readiness.ready && namespaces !== undefined ? namespaces.readiness() : readiness;
    },
    ...(namespaces === undefined ? {} : { namespaces }),
    ...(deps.liveness === undefined ? {} : { liveness: deps.liveness }),
  });
  // A new secure context applies to new connections; open ones finish on the one they started with.
  const server = app.server as unknown as TlsServer;
  const apply = (material: ServingMaterial) => server.setSecureContext(secureContextOptions(material.key, material.cert));
  tls.onChange(apply);
  const latest = tls.current();
  if (latest !== undefined && latest !== initial) apply(latest);
  try {
    await app.listen({ host: config.server.host, port: config.server.port });
  } catch (error) {
    tls.stop();
    namespaces?.stop();
    throw error;
  }
  return {
    app,
    tls,
    close: async () => {
      tls.stop();
      namespaces?.stop();
      await app.close();
    },
  };
}

/** Serves the webhook until SIGTERM/SIGINT; resolves once it has shut down. */
export async function serve(config: InjectorConfig): Promise<void> {
  // The config was read just before serve() is called, and is not read again while serving.
  const configLoadedAt = new Date();
  const logger = createLogger(config);
  // A failed lookup would fix the sidecar mode for the life of the process: retry a few times first.
  const { runtime, nativeSidecarDetail } = await resolveRuntime(config, { logger, attempts: SERVER_DETECT_ATTEMPTS });
  // With a cluster configured (in a pod, $KUBECONFIG, ~/.kube/config) the namespace cache reads
  // namespace defaults from it, and `secret` mode its Secret; without one the Kubernetes client is
  // never loaded.
  const cluster = findKubeConfigSources() === undefined ? undefined : (await import('./kube/client.ts')).loadKubeConfig();
  const kubeConfig = config.tls.mode === 'secret' ? cluster : undefined;
  const namespaces =
    cluster === undefined
      ? undefined
      : new NamespaceCache({ api: await (await import('./kube/namespace-cache.ts')).createNamespaceApi(cluster), logger });
  if (namespaces === undefined) logger.info('no cluster configured: serving without namespace defaults (SPEC.md §4b)');
  // An exception that escaped every handler leaves the process in a state nobody planned for: it
  // keeps answering (admissions in flight finish) but /healthz fails, so the kubelet restarts it
  // through the normal graceful termination rather than it dying mid-request.
  let fault: string | undefined;
  const liveness = () => (fault === undefined ? { ready: true } : { ready: false, reason: fault });
  const { app, close } = await startInjector(config, {
    logger,
    runtime,
    kubeConfig,
    configLoadedAt,
    liveness,
    ...(namespaces === undefined ? {} : { namespaces }),
  });
  logger.info(
    {
      url: `https://${config.server.host.includes(':') ? `[${config.server.host}]` : config.server.host}:${config.server.port}`,
      nativeSidecar: nativeSidecarDetail,
      tlsMode: config.tls.mode,
      namespaceDefaults: namespaces === undefined ? 'none (no cluster configured)' : 'from the namespace watch cache',
    },
    'envoy-injector listening',
  );

  // Keep serving if something escapes a handler (the webhook sits in the path of every pod creation),
  // but fail liveness so the replica is replaced.
  process.on('unhandledRejection', (error) => {
    logger.error({ err: error }, 'unhandled rejection: reporting unhealthy so the kubelet restarts this replica');
    fault ??= 'unhandled rejection (see the logs)';
  });
  process.on('uncaughtException', (error) => {
    logger.error({ err: error }, 'uncaught exception: reporting unhealthy so the kubelet restarts this replica');
    fault ??= 'uncaught exception (see the logs)';
  });

  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      stopping = true;
      logger.info({ signal, graceMs: config.server.shutdownGraceMs }, 'shutting down: finishing in-flight requests');
      const deadline = setTimeout(() => {
        logger.warn('grace period over: exiting with requests still open');
        process.exit(1);
      }, config.server.shutdownGraceMs);
      deadline.unref();
      // Closing the server stops Node's request-timeout checks, so a client that never finishes its
      // request would hold the shutdown to the end of the grace period. Anything still open once a
      // whole request timeout has passed is past its own timeout: close it, as the timeout would.
      const cutoff = setTimeout(() => {
        logger.warn({ requestTimeoutMs: config.server.requestTimeoutMs }, 'closing connections still open after the request timeout');
        app.server.closeAllConnections();
      }, config.server.requestTimeoutMs);
      cutoff.unref();
      close().then(
        () => {
          logger.info('shut down');
          resolve();
        },
        (error: unknown) => {
          logger.error({ err: error }, 'error while shutting down');
          resolve();
        },
      );
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}

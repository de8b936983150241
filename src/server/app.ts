// The HTTP(S) transport: bytes, headers, status codes and the AdmissionReview envelope. Builds the
// fastify instance without listening; only main.ts listens.
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { PATHS } from '../constants.ts';
import type { InjectorConfig, InjectorRuntime } from '../core/types.ts';
import { TLS_MIN_VERSION } from '../tls/material.ts';
import { admit, type AdmissionOutcome } from './admission.ts';
import { toHttpError } from './errors.ts';
import type { InjectorMetrics } from './metrics.ts';

/** Whether the server should receive traffic, and why not. */
export interface Readiness {
  readonly ready: boolean;
  readonly reason?: string;
}

export interface AppDeps {
  readonly config: InjectorConfig;
  readonly runtime: InjectorRuntime;
  readonly logger: Logger;
  /** Serving key and certificate; without them the app speaks plain HTTP (for app.inject tests). */
  readonly tls?: { readonly key: string; readonly cert: string };
  /** Readiness beyond "the process runs" (TLS loaded, caBundle in sync); ready when absent. */
  readonly readiness?: () => Readiness;
  /** Called after every admission. */
  readonly onAdmission?: (outcome: AdmissionOutcome, durationSeconds: number) => void;
  /** This instance's metrics (see metrics.ts), served at /metrics; without them there is no /metrics. */
  readonly metrics?: InjectorMetrics;
}

/** Returns the webhook's fastify instance with its routes, not yet listening. */
export function buildApp(deps: AppDeps): FastifyInstance {
  const { config, runtime, logger } = deps;
  const app = Fastify({
    loggerInstance: logger,
    // One line per admission is logged by the route itself (SPEC.md §8).
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.server.bodyLimitBytes,
    requestTimeout: config.server.requestTimeoutMs,
    // While closing, new requests get 503 so the API server retries another replica.
    return503OnClosing: true,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    ...(deps.tls === undefined
      ? {}
      : {
          https: {
            key: deps.tls.key,
            cert: deps.tls.cert,
            // The same minimum applies again on every certificate reload (serve.ts).
            minVersion: TLS_MIN_VERSION,
            // A client that never finishes its handshake is dropped instead of holding a socket.
            handshakeTimeout: Math.min(config.server.requestTimeoutMs, 10_000),
          },
        }),
  }) as unknown as FastifyInstance;

  // Only JSON is an AdmissionReview: without the built-in text/plain parser, any other type is 415.
  app.removeContentTypeParser('text/plain');

  app.setErrorHandler((error, request, reply) => {
    const mapped = toHttpError(error, config.server);
    deps.metrics?.recordRequestError(mapped.statusCode);
    if (mapped.serverFault) request.log.error({ err: error, path: request.url }, 'request failed');
    else request.log.warn({ path: request.url, status: mapped.statusCode, error: mapped.body.error }, 'request rejected');
    void reply.code(mapped.statusCode).type('application/json').send(mapped.body);
  });

  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send({ error: 'not-found', message: `no route ${request.method} ${request.url}` });
  });

  app.get(PATHS.healthz, async () => ({ status: 'ok' }));

  app.get(PATHS.readyz, async (_request, reply) => {
    const readiness = deps.readiness?.() ?? { ready: true };
    if (!readiness.ready) return reply.code(503).send({ status: 'not-ready', reason: readiness.reason ?? 'starting' });
    return { status: 'ready' };
  });

  const { metrics } = deps;
  if (metrics !== undefined) {
    app.get(PATHS.metrics, async (_request, reply) => reply.type(metrics.contentType).send(await metrics.render()));
  }

  app.post(PATHS.mutate, async (request, reply) => {
    const started = process.hrtime.bigint();
    const outcome = admit(request.body, config, runtime);
    const durationSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    const log = request.log.child({ uid: outcome.uid, namespace: outcome.namespace, pod: outcome.pod });
    const line = {
      kind: outcome.kind,
      operation: outcome.operation,
      decision: outcome.result,
      reasons: outcome.reasons,
      warnings: outcome.warnings,
      patchOperations: outcome.patchOperations,
      durationMs: Math.round(durationSeconds * 1e6) / 1e3,
    };
    if (outcome.result === 'error') log.error({ ...line, err: outcome.error }, 'admission failed');
    else log.info(line, 'admission');
    if (outcome.patchOperations > 0 && logger.isLevelEnabled('debug')) log.debug({ patch: outcome.injection?.patch }, 'patch');
    deps.metrics?.recordAdmission(outcome, durationSeconds);
    deps.onAdmission?.(outcome, durationSeconds);
    return reply.code(200).send(outcome.review);
  });

  return app;
}

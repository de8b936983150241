// The HTTP(S) transport: bytes, headers, status codes and the AdmissionReview envelope. Builds the
// fastify instance without listening; only main.ts listens.
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createRequire } from 'node:module';
import { PassThrough } from 'node:stream';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { PATHS } from '../constants.ts';
import { shorten } from '../core/reasons.ts';
import type { InjectorConfig, InjectorRuntime } from '../core/types.ts';
import { secureContextOptions } from '../tls/material.ts';
import { createAdmissionLimit, createPeerLimit, OVERLOAD_RETRY_AFTER_SECONDS, peerOf, type AdmissionLimit, type RefusalReason } from './admission-limit.ts';
import type { NamespaceCache } from '../kube/namespace-cache.ts';
import { admissionLogLine, answerAdmission, createAdmissionFastPath, namespaceToLookUp } from './admission.ts';
import { BodyTimeoutError, toHttpError } from './errors.ts';
import { createLeanMutate, isLeanMutate, JSON_CONTENT_TYPE, type ErrorAnswer, type MutateTransport, type RequestLog } from './lean-mutate.ts';
import type { InjectorMetrics } from './metrics.ts';
import { decodeReview, encodeReview } from './review.ts';

/** Route of the benchmark's baseline (see AppDeps.benchBaseline); never registered in production. */
export const BENCH_BASELINE_PATH = '/bench/baseline';

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
  /** Liveness beyond "the process answers": false after a fault it must be restarted for; alive when absent. */
  readonly liveness?: () => Readiness;
  /** The namespace watch cache (SPEC.md §4b); without it pods get no namespace defaults. */
  readonly namespaces?: Pick<NamespaceCache, 'defaultsFor'>;
  /** This instance's metrics (see metrics.ts), served at /metrics; without them there is no /metrics. */
  readonly metrics?: InjectorMetrics;
  /** The admission slots (default: server.maxConcurrentAdmissions of them); tests pass one to hold slots. */
  readonly admissionLimit?: AdmissionLimit;
  /**
   * Benchmark only (`npm run bench`): also serve BENCH_BASELINE_PATH, which decodes the same review
   * and answers `allowed: true` without injecting. `serve` never sets it.
   */
  readonly benchBaseline?: boolean;
  /**
   * Whether POST /mutate in the API server's shape is answered by the lean route (lean-mutate.ts)
   * in front of fastify; default true. False leaves every request to fastify's /mutate route, the
   * reference the lean route is tested against (test/lean-mutate.test.ts).
   */
  readonly leanMutate?: boolean;
}

/** Routes outside every bound: probes and scrapes must answer when the webhook is saturated. */
const UNBOUNDED_ROUTES: ReadonlySet<string> = new Set([PATHS.healthz, PATHS.readyz, PATHS.metrics]);

/**
 * Counts every refusal in the metrics, and logs them at most once a second (an attack or an
 * overload must not also flood the logs): the line gives the counts since the last one.
 */
function refusalLog(metrics: InjectorMetrics | undefined) {
  let since: Partial<Record<RefusalReason, number>> = {};
  let lastLine = 0;
  return {
    record(log: RequestLog, peer: string, url: string, reason: RefusalReason, status: number): void {
      metrics?.recordRequestError(status);
      metrics?.recordRefusal(reason);
      since[reason] = (since[reason] ?? 0) + 1;
      const now = Date.now();
      if (now - lastLine < 1_000) return;
      log.warn({ refused: since, peer, path: shorten(url, 64) }, 'requests refused');
      since = {};
      lastLine = now;
    },
  };
}

/** fastify's default request ids (`req-1`, `req-2`, … in base 36), one sequence for both /mutate routes. */
function requestIds(): () => string {
  let next = 0;
  return () => {
    next = (next + 1) & 0x7fffffff;
    return `req-${next.toString(36)}`;
  };
}

/** How often Node checks connections against the request timeout: often enough to honour short ones. */
function connectionsCheckingInterval(requestTimeoutMs: number): number {
  return Math.min(1_000, Math.max(25, Math.floor(requestTimeoutMs / 10)));
}

/** Resolves fastify's own dependencies, wherever the package manager put them. */
const requireFromFastify = createRequire(createRequire(import.meta.url).resolve('fastify'));
type CompilerFactory = (...args: unknown[]) => unknown;

/**
 * fastify's schema compilers (ajv, fast-json-stringify), loaded only if a route ever declares a
 * schema: no route does (the review is decoded by review.ts, answers are written whole), and loading
 * them was a tenth of the server's start.
 */
const LAZY_COMPILERS = {
  buildValidator: (...args: unknown[]) => (requireFromFastify('@fastify/ajv-compiler') as () => CompilerFactory)()(...args),
  buildSerializer: (...args: unknown[]) => (requireFromFastify('@fastify/fast-json-stringify-compiler') as () => CompilerFactory)()(...args),
};

/** Returns the webhook's fastify instance with its routes, not yet listening. */
export function buildApp(deps: AppDeps): FastifyInstance {
  const { config, runtime, logger } = deps;
  const { requestTimeoutMs } = config.server;
  // Node's own limits on a connection: the whole request (headers and body) within requestTimeoutMs,
  // else 408 and the socket is closed; checked at an interval that suits short timeouts too.
  const httpLimits = {
    requestTimeout: requestTimeoutMs,
    headersTimeout: requestTimeoutMs,
    connectionsCheckingInterval: connectionsCheckingInterval(requestTimeoutMs),
  };
  const nextRequestId = requestIds();
  // Set once the app's pieces exist (below); until then every request goes to fastify.
  let lean: ((request: IncomingMessage, response: ServerResponse) => void) | undefined;
  const { bodyLimitBytes } = config.server;
  const app = Fastify({
    loggerInstance: logger,
    genReqId: nextRequestId,
    // The server fastify would create (lib/server.js: the same options and timeouts), with a
    // listener that gives POST /mutate in the API server's shape to the lean route and every other
    // request to fastify.
    serverFactory: (handler, options) => {
      const listener = (request: IncomingMessage, response: ServerResponse) => {
        if (lean !== undefined && isLeanMutate(request, bodyLimitBytes)) lean(request, response);
        else handler(request, response);
      };
      const opts = options as unknown as { https?: object; http?: object; keepAliveTimeout: number; requestTimeout: number; connectionTimeout: number };
      const server = opts.https === undefined ? createHttpServer(opts.http ?? {}, listener) : createHttpsServer(opts.https, listener);
      server.keepAliveTimeout = opts.keepAliveTimeout;
      server.requestTimeout = opts.requestTimeout;
      server.setTimeout(opts.connectionTimeout);
      return server;
    },
    // One line per admission is logged by the route itself (SPEC.md §8).
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.server.bodyLimitBytes,
    requestTimeout: requestTimeoutMs,
    // A connection silent for this long is closed: the request timeout only starts with the first
    // byte of a request, so this is what drops a client that connects and never sends one. Longer
    // than the request timeout, so a request that is too slow gets its 408 first.
    connectionTimeout: 2 * requestTimeoutMs,
    // While closing, a request that still arrives on an open connection is served (with Connection:
    // close), as Go's http.Server.Shutdown does, rather than refused: the API server does not retry
    // a 503 without Retry-After, so a refusal would fail or skip that pod's injection in a rollout.
    return503OnClosing: false,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    schemaController: { compilersFactory: LAZY_COMPILERS as never },
    ...(deps.tls === undefined
      ? { http: httpLimits }
      : {
          https: {
            ...httpLimits,
            // The same version and suites apply again on every certificate reload (serve.ts).
            ...secureContextOptions(deps.tls.key, deps.tls.cert),
            // A client that never finishes its handshake is dropped instead of holding a socket.
            handshakeTimeout: Math.min(requestTimeoutMs, 10_000),
          },
        }),
  }) as unknown as FastifyInstance;

  // Once closing (SIGTERM), answers to requests already received also close their connection, so
  // the server can finish instead of waiting for idle keep-alive connections to time out.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', async (_request, reply) => {
    if (closing) void reply.header('connection', 'close');
  });

  // The bounds of admission-limit.ts. Health, readiness and metrics stay outside all of them, so
  // probes and scrapes keep working when the webhook is saturated.
  const limit = deps.admissionLimit ?? createAdmissionLimit(config.server.maxConcurrentAdmissions);
  const peers = createPeerLimit(config.server.maxRequestsPerPeer);
  const { bodyTimeoutMs } = config.server;
  const refusals = refusalLog(deps.metrics);
  const deadlines = new WeakMap<FastifyRequest, { timer: NodeJS.Timeout; body?: PassThrough }>();
  const releases = new WeakMap<FastifyRequest, () => void>();
  const peerReleases = new WeakMap<FastifyRequest, () => void>();

  // The refusals and error answers of both /mutate routes (this app's and lean-mutate.ts).
  const refusal = (log: RequestLog, peer: string, url: string, reason: 'overloaded' | 'peer-limit', message: string): ErrorAnswer => {
    refusals.record(log, peer, url, reason, 503);
    // Closed after the answer: the body was not read, and a connection kept alive would have to
    // drain it first.
    return {
      statusCode: 503,
      headers: { 'retry-after': String(OVERLOAD_RETRY_AFTER_SECONDS), connection: 'close' },
      body: { error: reason === 'overloaded' ? 'overloaded' : 'too-many-requests-from-peer', message },
    };
  };
  const refusePeer = (log: RequestLog, peer: string, url: string) =>
    refusal(log, peer, url, 'peer-limit', `too many requests in progress from ${peer} (server.maxRequestsPerPeer=${peers.max}); retry later`);
  const refuseOverloaded = (log: RequestLog, peer: string, url: string) =>
    refusal(log, peer, url, 'overloaded', `too many admissions in progress (server.maxConcurrentAdmissions=${limit.max}); retry later`);
  const answerError = (error: unknown, log: RequestLog, peer: string, url: string): ErrorAnswer => {
    const mapped = toHttpError(error, config.server);
    if (error instanceof BodyTimeoutError) {
      // Counted and logged with the other refusals (at most a line a second), not one line each.
      refusals.record(log, peer, url, 'body-timeout', mapped.statusCode);
      return { statusCode: mapped.statusCode, headers: { connection: 'close' }, body: mapped.body };
    }
    deps.metrics?.recordRequestError(mapped.statusCode);
    if (mapped.serverFault) log.error({ err: error, path: url }, 'request failed');
    else log.warn({ path: url, status: mapped.statusCode, error: mapped.body.error }, 'request rejected');
    return { statusCode: mapped.statusCode, headers: {}, body: mapped.body };
  };
  const sendAnswer = (reply: FastifyReply, answer: ErrorAnswer) => {
    void reply.code(answer.statusCode);
    for (const [name, value] of Object.entries(answer.headers)) void reply.header(name, value);
    return reply.type('application/json').send(answer.body);
  };
  const peerOfRequest = (request: FastifyRequest) => peerOf(request.socket.remoteAddress);

  app.addHook('onRequest', async (request, reply) => {
    if (UNBOUNDED_ROUTES.has(request.routeOptions.url ?? '')) return undefined;
    const peer = peerOf(request.socket.remoteAddress);
    const release = peers.tryAcquire(peer);
    if (release === undefined) return sendAnswer(reply, refusePeer(request.log, peer, request.url));
    // Given back once the answer is on its way (onSend below: not when the client has read it,
    // or a burst of answers waiting for their sockets would count against their peer), or when
    // the socket goes away first (client gone, timeout).
    peerReleases.set(request, release);
    reply.raw.once('close', release);
    // The body deadline runs from the headers. On expiry the body stream fails with a 408 error,
    // which fastify's body reader turns into the error answer (and closes the connection).
    const deadline: { timer: NodeJS.Timeout; body?: PassThrough } = {
      timer: setTimeout(() => {
        const body = deadline.body;
        // Failing a body that is no longer read (refused as too large, say) changes nothing.
        if (body !== undefined && !body.destroyed) body.destroy(new BodyTimeoutError(bodyTimeoutMs));
      }, bodyTimeoutMs),
    };
    deadlines.set(request, deadline);
    reply.raw.once('close', () => clearTimeout(deadline.timer));
    return undefined;
  });

  app.addHook('preParsing', async (request, _reply, payload) => {
    const deadline = deadlines.get(request);
    if (deadline === undefined) return payload;
    // A stream of our own between the socket and the body reader, so the deadline can fail it.
    const body = new PassThrough();
    // Never unhandled: the reader listens while it reads, and after that an error changes nothing.
    body.on('error', () => {});
    payload.on('error', (error) => body.destroy(error));
    payload.pipe(body);
    deadline.body = body;
    return body;
  });

  app.addHook('onSend', async (request) => {
    peerReleases.get(request)?.();
  });

  // The body is complete (or there is none): the deadline has done its work.
  app.addHook('preValidation', async (request) => {
    const deadline = deadlines.get(request);
    if (deadline !== undefined) clearTimeout(deadline.timer);
  });

  // An admission slot, taken once the body is complete and parsed, until the answer.
  const bounded = {
    preHandler: async (request: FastifyRequest, reply: FastifyReply) => {
      const release = limit.tryAcquire();
      if (release === undefined) return sendAnswer(reply, refuseOverloaded(request.log, peerOfRequest(request), request.url));
      releases.set(request, release);
      reply.raw.once('close', release);
      return undefined;
    },
    // Given back before the answer is written, so a client that has its answer can count on the slot.
    onSend: async (request: FastifyRequest) => {
      releases.get(request)?.();
    },
  };

  // Only JSON is an AdmissionReview: without the built-in text/plain parser, any other type is 415.
  app.removeContentTypeParser('text/plain');

  app.setErrorHandler((error, request, reply) => {
    void sendAnswer(reply, answerError(error, request.log, peerOfRequest(request), request.url));
  });

  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send({ error: 'not-found', message: `no route ${request.method} ${request.url}` });
  });

  app.get(PATHS.healthz, async (_request, reply) => {
    const liveness = deps.liveness?.() ?? { ready: true };
    if (!liveness.ready) return reply.code(503).send({ status: 'unhealthy', reason: liveness.reason ?? 'fault' });
    return { status: 'ok' };
  });

  app.get(PATHS.readyz, async (_request, reply) => {
    const readiness = deps.readiness?.() ?? { ready: true };
    if (!readiness.ready) return reply.code(503).send({ status: 'not-ready', reason: readiness.reason ?? 'starting' });
    return { status: 'ready' };
  });

  // Outside the admission bound: a scrape must work when the webhook is saturated.
  const { metrics } = deps;
  if (metrics !== undefined) {
    app.get(PATHS.metrics, async (_request, reply) => reply.type(metrics.contentType).send(await metrics.render()));
  }

  // Injected pods are answered from patch templates (fast-patch.ts), except at debug level, where
  // the reference path answers everything so that each patch can be logged as operations.
  const fastPath = createAdmissionFastPath(config, runtime);
  // One admission of a parsed body, for both /mutate routes: its answer as text, logged and counted.
  const answer = async (body: unknown, log: RequestLog): Promise<string> => {
    const started = process.hrtime.bigint();
    // From the cache (synchronous); only a miss waits, for one bounded read.
    const name = deps.namespaces === undefined ? undefined : namespaceToLookUp(body);
    const namespace = name === undefined ? undefined : await deps.namespaces?.defaultsFor(name);
    const debug = logger.isLevelEnabled('debug');
    const answered = answerAdmission(body, config, runtime, debug ? undefined : fastPath, namespace);
    const durationSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    const { record } = answered;
    // One log call: the request's bindings, the admission's identity and its decision (SPEC.md §8).
    const line = admissionLogLine(record, Math.round(durationSeconds * 1e6) / 1e3);
    if (record.result === 'error') log.error({ ...line, err: record.error }, 'admission failed');
    else log.info(line, 'admission');
    if (debug && answered.patch !== undefined) {
      log.debug({ uid: record.uid, namespace: record.namespace, pod: record.pod, patch: answered.patch }, 'patch');
    }
    deps.metrics?.recordAdmission(record, durationSeconds);
    return answered.body;
  };
  app.post(PATHS.mutate, bounded, async (request, reply) => {
    const text = await answer(request.body, request.log);
    // Written as the text it already is: no serializer.
    return reply.code(200).type(JSON_CONTENT_TYPE).send(text);
  });

  if (deps.leanMutate !== false) {
    const transport: MutateTransport = {
      bodyLimitBytes,
      bodyTimeoutMs,
      logger,
      limit,
      peers,
      nextRequestId,
      closing: () => closing,
      refusePeer,
      refuseOverloaded,
      answerError,
      answer,
    };
    lean = createLeanMutate(transport);
  }

  if (deps.benchBaseline === true) {
    // The same transport, limits and envelope as /mutate, without the core: what the benchmark compares with.
    app.post(BENCH_BASELINE_PATH, bounded, async (request, reply) => {
      const review = decodeReview(request.body);
      return reply.code(200).send(encodeReview(review.apiVersion, review.uid, { allowed: true }));
    });
  }

  return app;
}

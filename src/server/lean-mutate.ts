// The webhook route, POST /mutate, served by node:https directly for the request shape the API
// server sends (Content-Type application/json, a Content-Length within the body limit, no
// transfer or content encoding). Every other request — another shape of /mutate included — goes to
// the fastify app, whose /mutate route stays registered and is the reference this must equal
// byte for byte (test/lean-mutate.test.ts). Why it exists: fastify's per-request machinery (request
// and reply objects, hooks, routing, the child logger) cost ~40 µs of CPU per admission, as much as
// the injection itself (BENCHMARKS.md). Transport only: the limits, the error mapping, the
// admission's answer, its log line and metrics are the same functions the fastify route calls.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Buffer } from 'node:buffer';
import secureJsonParse from 'secure-json-parse';
import type { Logger } from 'pino';
import { PATHS } from '../constants.ts';
import { OVERLOAD_RETRY_AFTER_SECONDS, peerOf, type AdmissionLimit, type PeerLimit } from './admission-limit.ts';
import { BodyTimeoutError } from './errors.ts';

/** What fastify itself sends JSON as (and the lean route too). */
export const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

/** The Content-Type values taken here: what the API server sends (anything else goes to fastify). */
const LEAN_CONTENT_TYPES: ReadonlySet<string> = new Set(['application/json', JSON_CONTENT_TYPE]);

/** secure-json-parse as fastify's JSON parser is configured (app.ts): poisoned keys refused. */
const PARSE_OPTIONS = { protoAction: 'error', constructorAction: 'error' } as const;

/** An error the JSON body reader raises, by fastify's code, so that both routes map it alike. */
function bodyError(code: 'FST_ERR_CTP_BODY_TOO_LARGE' | 'FST_ERR_CTP_INVALID_CONTENT_LENGTH' | 'FST_ERR_CTP_EMPTY_JSON_BODY' | 'FST_ERR_CTP_INVALID_JSON_BODY'): Error {
  return Object.assign(new Error(code), { code });
}

/** The logger of one request: fastify's request.log, or the lean route's RequestLogger (same lines). */
export interface RequestLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
  debug(fields: object, message: string): void;
}

/**
 * The lean route's logger of one request: the lines fastify's request.log writes — the `reqId`
 * binding first, then the call's fields — written by the process logger itself. A pino child per
 * request (what fastify makes) cost ~30 k instructions, about two thirds of the admission's log
 * line itself (BENCHMARKS.md, issue 15e). Same bytes for plain objects of named fields, which is
 * every call made here; not for an Error as `fields` or a field named `reqId`. A class: one object
 * per request, its methods shared, rather than four closures per request.
 */
export class RequestLogger implements RequestLog {
  constructor(
    private readonly logger: Logger,
    private readonly reqId: string,
  ) {}
  info(fields: object, message: string): void {
    this.logger.info({ reqId: this.reqId, ...fields }, message);
  }
  warn(fields: object, message: string): void {
    this.logger.warn({ reqId: this.reqId, ...fields }, message);
  }
  error(fields: object, message: string): void {
    this.logger.error({ reqId: this.reqId, ...fields }, message);
  }
  debug(fields: object, message: string): void {
    this.logger.debug({ reqId: this.reqId, ...fields }, message);
  }
}

/**
 * What secure-json-parse's checks for poisoned keys look for, as one regular expression: its two
 * expressions match a key `__proto__` or `constructor` spelled with literal letters or with
 * `\u005X`, `\u006X`, `\u007X` escapes of them, so every such key holds a literal name or one of
 * these escapes. One pass of one expression: searching for each literal with String#includes cost
 * 65 µs on the large review (1,500 env var names, each with underscores the search stopped at),
 * this ~20 µs (BENCHMARKS.md, issue 15f).
 */
const POISON_CANDIDATE = /__proto__|constructor|\\u00[5-7]/;

/**
 * Whether secure-json-parse's checks for poisoned keys could find anything in `text`: a key spelled
 * as above, or a leading byte-order mark (which it drops). Without any of these, JSON.parse alone
 * gives what it gives, minus two scans of the whole body.
 */
export function mayHoldPoisonedKeys(text: string): boolean {
  return text.charCodeAt(0) === 0xfeff || POISON_CANDIDATE.test(text);
}

/** A refusal or an error, as both routes send it. */
export interface ErrorAnswer {
  readonly statusCode: number;
  /** Headers before Content-Type, in fastify's order (retry-after, connection). */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: { readonly error: string; readonly message: string };
}

/** What the lean route shares with the fastify app (built by app.ts). */
export interface MutateTransport {
  readonly bodyLimitBytes: number;
  readonly bodyTimeoutMs: number;
  readonly logger: Logger;
  readonly limit: AdmissionLimit;
  readonly peers: PeerLimit;
  /** The request id of the next request: one sequence for both routes. */
  nextRequestId(): string;
  /** Whether the server is closing (answers then close their connection). */
  closing(): boolean;
  /** The refusal of a peer over its bound (counted and logged). */
  refusePeer(log: RequestLog, peer: string, url: string): ErrorAnswer;
  /** The refusal of an admission over the slots (counted and logged). */
  refuseOverloaded(log: RequestLog, peer: string, url: string): ErrorAnswer;
  /** The answer to an error while reading or answering (counted and logged). */
  answerError(error: unknown, log: RequestLog, peer: string, url: string): ErrorAnswer;
  /** Answers a parsed review body: the AdmissionReview as JSON text; throws as the route would. */
  answer(body: unknown, log: RequestLog): Promise<string>;
}

/**
 * Returns whether a request is one the lean route takes: POST /mutate (any query) whose headers say
 * a JSON body of known length within the limit. Decided on the headers alone, before anything is read.
 */
export function isLeanMutate(request: IncomingMessage, bodyLimitBytes: number): boolean {
  if (request.method !== 'POST') return false;
  const url = request.url ?? '';
  if (url !== PATHS.mutate && !(url.startsWith(PATHS.mutate) && url.charCodeAt(PATHS.mutate.length) === 63 /* ? */)) return false;
  const { headers } = request;
  if (!LEAN_CONTENT_TYPES.has(headers['content-type'] ?? '')) return false;
  if (headers['transfer-encoding'] !== undefined || headers['content-encoding'] !== undefined) return false;
  const length = headers['content-length'];
  if (length === undefined || !/^\d{1,10}$/.test(length)) return false;
  return Number(length) <= bodyLimitBytes;
}

/** Returns the request listener of the lean route; it handles only what isLeanMutate accepts. */
export function createLeanMutate(transport: MutateTransport): (request: IncomingMessage, response: ServerResponse) => void {
  const { limit, peers, bodyLimitBytes, bodyTimeoutMs } = transport;

  const send = (response: ServerResponse, statusCode: number, before: Readonly<Record<string, string>> | undefined, text: string) => {
    if (response.destroyed || response.headersSent) return;
    const headers: Record<string, string> = { ...before, 'content-type': JSON_CONTENT_TYPE };
    if (transport.closing()) headers['connection'] = 'close';
    headers['content-length'] = String(Buffer.byteLength(text));
    response.writeHead(statusCode, headers);
    response.end(text);
  };
  const sendError = (response: ServerResponse, answer: ErrorAnswer) => send(response, answer.statusCode, answer.headers, JSON.stringify(answer.body));

  return (request, response) => {
    const url = request.url ?? '';
    const log = new RequestLogger(transport.logger, transport.nextRequestId());
    const peer = peerOf(request.socket.remoteAddress);
    const releasePeer = peers.tryAcquire(peer);
    if (releasePeer === undefined) {
      sendError(response, transport.refusePeer(log, peer, url));
      return;
    }
    response.once('close', releasePeer);
    let releaseSlot: (() => void) | undefined;
    let done = false;
    const finish = (statusCode: number, before: Readonly<Record<string, string>> | undefined, text: string) => {
      if (done) return;
      done = true;
      releaseSlot?.();
      releasePeer();
      send(response, statusCode, before, text);
    };
    const fail = (error: unknown) => {
      if (done) return;
      const answer = transport.answerError(error, log, peer, url);
      finish(answer.statusCode, answer.headers, JSON.stringify(answer.body));
    };
    // A body that could not be read or parsed closes its connection (the client may still be
    // sending), as fastify's body reader does: that header comes first.
    const failBody = (error: unknown) => {
      if (done) return;
      const answer = transport.answerError(error, log, peer, url);
      finish(answer.statusCode, { connection: 'close', ...answer.headers }, JSON.stringify(answer.body));
    };

    const chunks: Buffer[] = [];
    let received = 0;
    const expected = Number(request.headers['content-length']);
    const stopReading = () => {
      request.removeListener('data', onData);
      request.removeListener('end', onEnd);
    };
    // The body deadline runs from the headers, as in the fastify route (app.ts).
    const deadline = setTimeout(() => {
      stopReading();
      failBody(new BodyTimeoutError(bodyTimeoutMs));
    }, bodyTimeoutMs);
    response.once('close', () => clearTimeout(deadline));
    function onData(chunk: Buffer) {
      received += chunk.length;
      if (received > bodyLimitBytes) {
        stopReading();
        clearTimeout(deadline);
        failBody(bodyError('FST_ERR_CTP_BODY_TOO_LARGE'));
        return;
      }
      chunks.push(chunk);
    }
    function onEnd() {
      stopReading();
      clearTimeout(deadline);
      if (received !== expected) return failBody(bodyError('FST_ERR_CTP_INVALID_CONTENT_LENGTH'));
      if (received === 0) return failBody(bodyError('FST_ERR_CTP_EMPTY_JSON_BODY'));
      let body: unknown;
      try {
        const text = chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks, received).toString('utf8');
        body = mayHoldPoisonedKeys(text) ? secureJsonParse.parse(text, undefined, PARSE_OPTIONS) : JSON.parse(text);
      } catch {
        return failBody(bodyError('FST_ERR_CTP_INVALID_JSON_BODY'));
      }
      // An admission slot, taken once the body is complete and parsed, until the answer.
      releaseSlot = limit.tryAcquire();
      if (releaseSlot === undefined) {
        const answer = transport.refuseOverloaded(log, peer, url);
        return finish(answer.statusCode, answer.headers, JSON.stringify(answer.body));
      }
      response.once('close', releaseSlot);
      transport.answer(body, log).then((text) => finish(200, undefined, text), fail);
    }
    request.on('data', onData);
    request.on('end', onEnd);
    request.once('error', (error) => {
      stopReading();
      clearTimeout(deadline);
      // What fastify's body reader does with a failed stream: a client error (HTTP 400 unless it has a 4xx).
      const status = (error as { statusCode?: unknown }).statusCode;
      if (!(typeof status === 'number' && status >= 400)) Object.assign(error, { statusCode: 400 });
      failBody(error);
    });
  };
}

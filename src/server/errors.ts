// The one place where errors become HTTP responses. Clients get a status, a stable code and a
// message; stack traces and internals stay in the logs.
import { InjectorError } from '../errors.ts';

export interface HttpError {
  readonly statusCode: number;
  readonly body: { readonly error: string; readonly message: string };
  /** Whether this is the server's fault (logged at error) or the client's (logged at warn). */
  readonly serverFault: boolean;
}

/** A request body that did not arrive within server.bodyTimeoutMs of its headers (HTTP 408). */
export class BodyTimeoutError extends InjectorError {
  /** Read by fastify's body reader: the status of the answer. */
  readonly statusCode = 408;

  constructor(readonly timeoutMs: number) {
    super('body-timeout', `the request body did not arrive within ${timeoutMs} ms of its headers (server.bodyTimeoutMs)`);
  }
}

const clientError = (statusCode: number, error: string, message: string): HttpError => ({
  statusCode,
  body: { error, message },
  serverFault: false,
});

/** Maps any error raised while serving a request to the response the client gets. */
export function toHttpError(error: unknown, limits: { bodyLimitBytes: number }): HttpError {
  const code = (error as { code?: unknown } | null)?.code;
  switch (code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return clientError(415, 'unsupported-media-type', 'the request body must be JSON (Content-Type: application/json)');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return clientError(413, 'body-too-large', `the request body is larger than the limit of ${limits.bodyLimitBytes} bytes`);
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return clientError(400, 'invalid-json', 'the request body is not valid JSON');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return clientError(400, 'invalid-content-length', 'the request body does not match its Content-Length');
    case 'body-timeout':
      return clientError(408, 'body-timeout', (error as InjectorError).message);
    case 'invalid-review':
      return clientError(400, 'invalid-review', `not a valid AdmissionReview: ${(error as InjectorError).message}`);
    default:
      break;
  }
  // JSON.parse errors (including __proto__ poisoning refused by the parser) and aborted bodies.
  if (error instanceof SyntaxError) return clientError(400, 'invalid-json', 'the request body is not valid JSON');
  const statusCode = (error as { statusCode?: unknown } | null)?.statusCode;
  if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) {
    return clientError(statusCode, 'bad-request', 'the request could not be read');
  }
  return {
    statusCode: 500,
    body: { error: 'internal-error', message: 'internal error; see the injector logs' },
    serverFault: true,
  };
}

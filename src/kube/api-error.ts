// Errors from the Kubernetes API as one type: the HTTP status, the `reason` of the metav1.Status the
// API server answered with (NotFound, AlreadyExists, Conflict, Forbidden, …) and its message.
import { ApiException } from '@kubernetes/client-node';
import { InjectorError } from '../errors.ts';

/** A failed call to the Kubernetes API, with what the API server said. */
export class KubeApiError extends InjectorError {
  /** HTTP status, or 0 when no answer came (network error, timeout). */
  readonly status: number;
  /** `reason` of the metav1.Status (e.g. `Conflict`), or a stand-in such as `Timeout`. */
  readonly reason: string;

  constructor(status: number, reason: string, message: string, options?: { cause?: unknown }) {
    super('kube-api', message, options);
    this.status = status;
    this.reason = reason;
  }
}

/** Whether `error` is the API server saying the object does not exist. */
export const isNotFound = (error: unknown): boolean => error instanceof KubeApiError && error.status === 404;
/** Whether `error` is the API server refusing a create because the name is taken. */
export const isAlreadyExists = (error: unknown): boolean =>
  error instanceof KubeApiError && error.status === 409 && error.reason === 'AlreadyExists';
/** Whether `error` is an optimistic-concurrency failure (the resourceVersion moved on). */
export const isConflict = (error: unknown): boolean =>
  error instanceof KubeApiError && error.status === 409 && error.reason !== 'AlreadyExists';

/** Reads a metav1.Status out of whatever body client-node kept (text, object or nothing). */
function statusOf(body: unknown): { reason?: string; message?: string } {
  let value: unknown = body;
  if (typeof body === 'string') {
    try {
      value = JSON.parse(body);
    } catch {
      return body.trim() === '' ? {} : { message: body.trim().slice(0, 300) };
    }
  }
  if (typeof value !== 'object' || value === null) return {};
  const status = value as { kind?: unknown; reason?: unknown; message?: unknown };
  return {
    ...(typeof status.reason === 'string' && status.reason !== '' ? { reason: status.reason } : {}),
    ...(typeof status.message === 'string' && status.message !== '' ? { message: status.message } : {}),
  };
}

const REASON_BY_STATUS: Readonly<Record<number, string>> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
  410: 'Expired',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

/**
 * Returns `error` as a KubeApiError whose message is one line: what was attempted, the status and
 * the API server's own words (client-node's ApiException message carries headers and raw JSON).
 */
export function toKubeApiError(error: unknown, what: string): KubeApiError {
  if (error instanceof KubeApiError) return error;
  if (error instanceof ApiException) {
    const status = statusOf(error.body);
    const code = error.code as number;
    const reason = status.reason ?? REASON_BY_STATUS[code] ?? `HTTP${code}`;
    const detail = status.message ?? reason;
    return new KubeApiError(code, reason, `${what}: ${detail} (HTTP ${code})`, { cause: error });
  }
  const e = error as { name?: unknown; message?: unknown; code?: unknown } | null;
  if (e?.name === 'AbortError' || e?.name === 'TimeoutError') {
    return new KubeApiError(0, 'Timeout', `${what}: the API server did not answer in time`, { cause: error });
  }
  const message = typeof e?.message === 'string' ? e.message.split('\n')[0] : String(error);
  return new KubeApiError(0, 'Unreachable', `${what}: ${message}`, { cause: error });
}

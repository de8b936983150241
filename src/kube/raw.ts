// Calls client-node's typed APIs but keeps the objects as the API server's own JSON. client-node's
// model serializer only knows the fields of the Kubernetes version it was generated from: a
// read-modify-replace through it would silently drop any field a newer API server added (or a
// field of an admission webhook the client does not model). Here the typed call still builds the
// URL, the verb, authentication and TLS; a per-call middleware swaps in the raw request body and
// captures the raw response body, which is what the caller gets.
import { Buffer } from 'node:buffer';
import { Observable, type ConfigurationOptions, type ObservableMiddleware } from '@kubernetes/client-node';
import type { JsonObject } from '../core/types.ts';
import { toKubeApiError } from './api-error.ts';

/** Time allowed for one API request before it is aborted. */
export const KUBE_REQUEST_TIMEOUT_MS = 10_000;

/** A typed client-node call, given the per-call options that carry the middleware. */
export type TypedCall = (options: ConfigurationOptions) => Promise<unknown>;

/**
 * Runs `call` and returns the response body as parsed JSON; when `body` is given it is sent
 * verbatim instead of client-node's re-serialized copy. Failures become a KubeApiError naming `what`.
 */
export async function callRaw(
  what: string,
  call: TypedCall,
  body?: JsonObject,
  timeoutMs: number = KUBE_REQUEST_TIMEOUT_MS,
): Promise<JsonObject> {
  let captured: string | undefined;
  const middleware: ObservableMiddleware = {
    pre(context) {
      if (body !== undefined) context.setBody(JSON.stringify(body));
      // Aborts the socket too, unlike a timer racing the promise.
      context.setSignal(AbortSignal.timeout(timeoutMs));
      return new Observable(Promise.resolve(context));
    },
    post(response) {
      return new Observable(
        response.body.text().then((text) => {
          captured = text;
          // The body stream can be read once: hand client-node a copy to deserialize (or to put
          // into its ApiException on failure).
          response.body = { text: async () => text, binary: async () => Buffer.from(text) };
          return response;
        }),
      );
    },
  };
  try {
    // 'append' keeps whatever middleware the KubeConfig's configuration already has.
    await call({ middleware: [middleware], middlewareMergeStrategy: 'append' });
  } catch (error) {
    throw toKubeApiError(error, what);
  }
  if (captured === undefined) throw toKubeApiError(new Error('the response had no body'), what);
  try {
    const parsed: unknown = JSON.parse(captured);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
    return parsed as JsonObject;
  } catch (error) {
    throw toKubeApiError(new Error(`the response is not a JSON object (${(error as Error).message})`), what);
  }
}

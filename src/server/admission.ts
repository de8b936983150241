// One admission: decode the review, run the core, build the response. No HTTP here.
import { Buffer } from 'node:buffer';
import { injectPod, type InjectionResult } from '../core/inject.ts';
import { shorten } from '../core/reasons.ts';
import type { InjectorConfig, InjectorRuntime, JsonObject } from '../core/types.ts';
import { decodeReview, encodeReview, type DecodedReview, type ReviewResponse } from './review.ts';

/** Result label of an admission, as counted in metrics and logged. */
export type AdmissionResult = 'injected' | 'skipped' | 'denied' | 'error';

/** What the transport logs and counts about one admission. */
export interface AdmissionOutcome {
  readonly review: JsonObject;
  readonly result: AdmissionResult;
  /** Reason codes of the decision (or `internal-error`). */
  readonly reasons: readonly string[];
  readonly warnings: readonly string[];
  readonly uid: string;
  readonly namespace: string;
  /** Pod name, or its generateName when the name is not known yet. */
  readonly pod: string;
  readonly kind: string;
  readonly operation: string;
  readonly patchOperations: number;
  readonly patchBytes: number;
  /** The unexpected error, when result is `error` (logged, never sent). */
  readonly error?: unknown;
  readonly injection?: InjectionResult;
}

/** Prefix of every message the injector returns to clients, so users know who is speaking. */
const WHO = 'envoy-injector';

/**
 * Limits of AdmissionResponse warnings. The API server drops a warning holding a control character
 * and, once a request's warnings pass 4096 characters, cuts each to 256; kubectl prints one line
 * per warning. So each is kept to one line of at most 256 characters, and a pod with many (say,
 * dozens of misspelt annotations) gets the first few and a pointer to `explain`.
 */
export const WARNING_LIMITS = { maxLength: 256, maxCount: 8 } as const;

/** Returns the warnings as sent to the client: prefixed, one line each, within WARNING_LIMITS. */
export function formatWarnings(messages: readonly string[]): string[] {
  const line = (text: string): string => {
    const chars = Array.from(`${WHO}: ${text}`.replace(/\p{Cc}/gu, ' '));
    return chars.length <= WARNING_LIMITS.maxLength ? chars.join('') : `${chars.slice(0, WARNING_LIMITS.maxLength - 1).join('')}…`;
  };
  if (messages.length <= WARNING_LIMITS.maxCount) return messages.map(line);
  const shown = messages.slice(0, WARNING_LIMITS.maxCount - 1).map(line);
  const more = messages.length - shown.length;
  return [...shown, line(`${more} more warnings; run "envoy-injector explain -f" on the manifest to see them all.`)];
}

function podName(object: unknown): string {
  const metadata = (object as { metadata?: { name?: unknown; generateName?: unknown } } | null)?.metadata;
  if (typeof metadata?.name === 'string' && metadata.name !== '') return metadata.name;
  if (typeof metadata?.generateName === 'string') return metadata.generateName;
  return '';
}

/**
 * Answers one AdmissionReview body. Throws ReviewDecodeError for a body that is not a review; any
 * other failure is answered as `allowed: false` with the uid and a message without internals.
 */
export function admit(body: unknown, config: InjectorConfig, runtime: InjectorRuntime): AdmissionOutcome {
  const review: DecodedReview = decodeReview(body);
  // What is logged: the API server validates names only after mutating admission, so a pod name
  // may be anything; kept to the lengths a valid name could have.
  const base = {
    uid: review.uid,
    namespace: shorten(review.context.namespace, 63),
    pod: shorten(podName(review.object), 253),
    kind: shorten(review.context.kind, 128),
    operation: shorten(review.context.operation, 32),
  };
  let injection: InjectionResult;
  try {
    injection = injectPod(review.object, review.context, config, runtime);
  } catch (error) {
    const response: ReviewResponse = {
      allowed: false,
      status: {
        code: 500,
        reason: 'InternalError',
        message: `${WHO} could not inject the pod because of an internal error (request uid ${review.uid}); see the injector's logs`,
      },
    };
    return {
      ...base,
      review: encodeReview(review.apiVersion, review.uid, response),
      result: 'error',
      reasons: ['internal-error'],
      warnings: [],
      patchOperations: 0,
      patchBytes: 0,
      error,
    };
  }
  const { decision } = injection;
  const warnings = formatWarnings(injection.warnings.map((w) => w.message));
  let response: ReviewResponse;
  if (decision.action === 'deny') {
    response = {
      allowed: false,
      warnings,
      status: {
        code: 400,
        reason: 'BadRequest',
        message: `${WHO} refused to inject the pod: ${decision.reasons.map((r) => r.message).join(' ')}`,
      },
    };
  } else {
    response = { allowed: true, patch: injection.patch, warnings };
  }
  const encoded = encodeReview(review.apiVersion, review.uid, response);
  const patch = (encoded['response'] as JsonObject)['patch'];
  return {
    ...base,
    review: encoded,
    result: decision.action === 'inject' ? 'injected' : decision.action === 'skip' ? 'skipped' : 'denied',
    reasons: decision.reasons.map((r) => r.code),
    warnings: injection.warnings.map((w) => w.code),
    patchOperations: injection.patch.length,
    patchBytes: typeof patch === 'string' ? Buffer.byteLength(patch, 'base64') : 0,
    injection,
  };
}

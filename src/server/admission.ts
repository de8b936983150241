// One admission: decode the review, run the core, build the response. No HTTP here.
import { Buffer } from 'node:buffer';
import type { Operation } from 'fast-json-patch';
import { injectPod, type InjectionResult } from '../core/inject.ts';
import type { Action } from '../core/reasons.ts';
import { shorten } from '../core/reasons.ts';
import type { InjectorConfig, InjectorRuntime, JsonObject } from '../core/types.ts';
import { admissionContext } from '../core/context.ts';
import { createFastPatcher, type FastPatcher } from '../core/fast-patch.ts';
import type { NamespaceDefaultsLookup } from '../kube/namespace-cache.ts';
import { decodeReview, encodeAllowedReviewText, encodeReview, type DecodedReview, type ReviewResponse } from './review.ts';

/** Result label of an admission, as counted in metrics and logged. */
export type AdmissionResult = 'injected' | 'reordered' | 'skipped' | 'denied' | 'error';

/** The result label of each decision. */
export const RESULT_OF_ACTION: Readonly<Record<Action, AdmissionResult>> = { inject: 'injected', reorder: 'reordered', skip: 'skipped', deny: 'denied' };

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

/** Control characters, which the API server refuses in a warning. */
const CONTROL_CHARACTERS = /\p{Cc}/gu;

/** Returns one warning as sent: prefixed, on one line, at most WARNING_LIMITS.maxLength characters. */
function warningLine(text: string): string {
  const line = `${WHO}: ${text}`.replace(CONTROL_CHARACTERS, ' ');
  // Characters are counted as code points; a line of fewer UTF-16 units than the limit is short enough.
  if (line.length <= WARNING_LIMITS.maxLength) return line;
  const chars = Array.from(line);
  return chars.length <= WARNING_LIMITS.maxLength ? line : `${chars.slice(0, WARNING_LIMITS.maxLength - 1).join('')}…`;
}

/** Returns the warnings as sent to the client: prefixed, one line each, within WARNING_LIMITS. */
export function formatWarnings(messages: readonly string[]): string[] {
  const line = warningLine;
  if (messages.length <= WARNING_LIMITS.maxCount) return messages.map(line);
  const shown = messages.slice(0, WARNING_LIMITS.maxCount - 1).map(line);
  const more = messages.length - shown.length;
  return [...shown, line(`${more} more warnings; run "envoy-injector explain -f" on the manifest to see them all.`)];
}

/** Who an admission is about, as logged. */
type RecordIdentity = Pick<AdmissionOutcome, 'uid' | 'namespace' | 'pod' | 'kind' | 'operation'>;

/** Returns who an admission is about, as logged: within the lengths a valid name could have. */
function recordIdentity(review: DecodedReview): RecordIdentity {
  return {
    uid: review.uid,
    namespace: shorten(review.context.namespace, 63),
    pod: shorten(podName(review.object), 253),
    kind: shorten(review.context.kind, 128),
    operation: shorten(review.context.operation, 32),
  };
}

/** What an admission came to, besides who it is about. */
type AdmissionCounts = Pick<AdmissionOutcome, 'result' | 'reasons' | 'warnings' | 'patchOperations' | 'patchBytes' | 'error'>;

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * Returns the record of an admission: who it is about and what it came to, with `error` only when
 * `counts` has one. Built field by field, not by spreading: V8 makes an object literal that adds
 * properties after a spread through its runtime, one property at a time (~1 µs against ~20 ns
 * for this literal, in a micro-benchmark on Node 20), and every admission makes a record.
 */
function admissionRecord(identity: RecordIdentity, counts: AdmissionCounts, path: AnswerPath): AdmissionRecord {
  const record: Mutable<AdmissionRecord> = {
    uid: identity.uid,
    namespace: identity.namespace,
    pod: identity.pod,
    kind: identity.kind,
    operation: identity.operation,
    result: counts.result,
    reasons: counts.reasons,
    warnings: counts.warnings,
    patchOperations: counts.patchOperations,
    patchBytes: counts.patchBytes,
    path,
  };
  if ('error' in counts) record.error = counts.error;
  return record;
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
export function admit(
  body: unknown,
  config: InjectorConfig,
  runtime: InjectorRuntime,
  namespace?: NamespaceDefaultsLookup,
): AdmissionOutcome {
  const { record, review, injection } = admitDecoded(withNamespace(decodeReview(body), namespace), config, runtime);
  // The flat outcome of the reference API (tests, bench/measure-core.ts); the server reads the record itself.
  const { path: _path, ...counted } = record;
  return { ...counted, review, ...(injection === undefined ? {} : { injection }) };
}

/** One admission answered by the reference path: its record, the AdmissionReview, and the injection when one was made. */
interface Admitted {
  readonly record: AdmissionRecord;
  readonly review: JsonObject;
  readonly injection?: InjectionResult;
}

/**
 * Adds what the namespace cache knows of the pod's namespace (SPEC.md §4b) to a decoded review's
 * context, for the core: its annotations, or that they are unknown.
 */
function withNamespace(decoded: DecodedReview, namespace: NamespaceDefaultsLookup | undefined): DecodedReview {
  if (namespace === undefined) return decoded;
  // Built field by field, not by spreading (see admissionRecord): this runs for every admission
  // when the namespace cache is on.
  const { context } = decoded;
  return {
    apiVersion: decoded.apiVersion,
    uid: decoded.uid,
    context: admissionContext({
      namespace: context.namespace,
      kind: context.kind,
      operation: context.operation,
      subResource: context.subResource,
      namespaceLabels: context.namespaceLabels,
      workloadKind: context.workloadKind,
      namespaceAnnotations: namespace.known ? namespace.annotations : context.namespaceAnnotations,
      namespaceAnnotationsUnknown: namespace.known ? context.namespaceAnnotationsUnknown : true,
    }),
    object: decoded.object,
  };
}

/** Answers one decoded AdmissionReview (see admit). */
function admitDecoded(review: DecodedReview, config: InjectorConfig, runtime: InjectorRuntime): Admitted {
  // What is logged: the API server validates names only after mutating admission, so a pod name
  // may be anything; kept to the lengths a valid name could have.
  const identity = recordIdentity(review);
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
    const counts: AdmissionCounts = { result: 'error', reasons: ['internal-error'], warnings: [], patchOperations: 0, patchBytes: 0, error };
    return { record: admissionRecord(identity, counts, 'reference'), review: encodeReview(review.apiVersion, review.uid, response) };
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
  const counts: AdmissionCounts = {
    result: RESULT_OF_ACTION[decision.action],
    reasons: decision.reasons.map((r) => r.code),
    warnings: injection.warnings.map((w) => w.code),
    patchOperations: injection.patch.length,
    patchBytes: typeof patch === 'string' ? Buffer.byteLength(patch, 'base64') : 0,
  };
  return { record: admissionRecord(identity, counts, 'reference'), review: encoded, injection };
}

/**
 * Returns the namespace whose defaults an AdmissionReview body needs — a Pod's creation — read
 * without decoding the review (admit does that, and refuses what is malformed), or undefined.
 */
export function namespaceToLookUp(body: unknown): string | undefined {
  const request = (body as { request?: unknown } | null)?.request as Record<string, unknown> | undefined;
  if (typeof request !== 'object' || request === null) return undefined;
  const kind = request['kind'] as Record<string, unknown> | undefined;
  if (request['operation'] !== 'CREATE' || kind?.['kind'] !== 'Pod' || (kind['group'] ?? '') !== '' || request['subResource']) return undefined;
  const namespace = request['namespace'];
  return typeof namespace === 'string' && namespace !== '' ? namespace : undefined;
}

/** Which path answered an admission: a cached template, a template rendered for it, or `admit`. */
export type AnswerPath = 'hit' | 'miss' | 'reference';

/** What the transport logs and counts about one admission: the outcome without its objects. */
export type AdmissionRecord = Omit<AdmissionOutcome, 'review' | 'injection'> & { readonly path: AnswerPath };

/** One admission answered: what to log and count, and the AdmissionReview to send as JSON text. */
export interface AdmissionAnswer {
  readonly record: AdmissionRecord;
  readonly body: string;
  /** The patch as operations, when the reference path answered (logged at debug level). */
  readonly patch?: readonly Operation[];
}

/** The fast path of the server: one template cache per (config, runtime) the app runs with. */
export function createAdmissionFastPath(config: InjectorConfig, runtime: InjectorRuntime): FastPatcher {
  return createFastPatcher(config, runtime);
}

/**
 * Answers one AdmissionReview body, as `admit` does, byte for byte: an injected pod from the fast
 * path's templates when `fast` is given and knows the pod, anything else (skips, denials, errors,
 * keys it cannot cache) by `admit`. Throws ReviewDecodeError for a body that is not a review.
 */
export function answerAdmission(
  body: unknown,
  config: InjectorConfig,
  runtime: InjectorRuntime,
  fast?: FastPatcher,
  namespace?: NamespaceDefaultsLookup,
): AdmissionAnswer {
  // The namespace's annotations go into the context both paths read: the fast path's template key
  // holds every setting's text in play, the namespace's among them.
  const review = withNamespace(decodeReview(body), namespace);
  if (fast !== undefined) {
    let result: ReturnType<FastPatcher['inject']> | undefined;
    try {
      result = fast.inject(review.object, review.context);
    } catch {
      // The reference path meets the same failure and answers it (allowed: false, logged).
      result = undefined;
    }
    if (result?.handled === true) {
      const { injection } = result;
      const counts: AdmissionCounts = {
        result: 'injected',
        reasons: injection.decision.reasons.map((r) => r.code),
        warnings: injection.warnings.map((w) => w.code),
        patchOperations: injection.patchOperations,
        patchBytes: injection.patchBytes,
      };
      return {
        record: admissionRecord(recordIdentity(review), counts, injection.cache),
        body: encodeAllowedReviewText(
          review.apiVersion,
          review.uid,
          injection.patchBase64,
          formatWarnings(injection.warnings.map((w) => w.message)),
        ),
      };
    }
  }
  const { record, review: encoded, injection } = admitDecoded(review, config, runtime);
  return {
    record,
    body: JSON.stringify(encoded),
    ...(injection !== undefined && injection.patch.length > 0 ? { patch: injection.patch } : {}),
  };
}

/** Returns the fields of an admission's log line (SPEC.md §8), the request's own bindings aside. */
export function admissionLogLine(record: AdmissionRecord, durationMs: number): Record<string, unknown> {
  return {
    uid: record.uid,
    namespace: record.namespace,
    pod: record.pod,
    kind: record.kind,
    operation: record.operation,
    decision: record.result,
    reasons: record.reasons,
    warnings: record.warnings,
    patchOperations: record.patchOperations,
    durationMs,
  };
}

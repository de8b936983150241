// The AdmissionReview envelope (admission.k8s.io/v1 and v1beta1): decoding a request into what the
// core needs, and encoding the response in the version that was asked.
import { Buffer } from 'node:buffer';
import type { Operation } from 'fast-json-patch';
import { admissionContext } from '../core/context.ts';
import type { AdmissionContext, JsonObject } from '../core/types.ts';
import { shorten } from '../core/reasons.ts';
import { ReviewDecodeError } from '../errors.ts';

export const REVIEW_VERSIONS = ['admission.k8s.io/v1', 'admission.k8s.io/v1beta1'] as const;
export type ReviewVersion = (typeof REVIEW_VERSIONS)[number];

/** The parts of an AdmissionRequest the injector uses. */
export interface DecodedReview {
  readonly apiVersion: ReviewVersion;
  readonly uid: string;
  readonly context: AdmissionContext;
  readonly object: unknown;
}

const isObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const MAX_UID_LENGTH = 256;
/** Longest kind, group, operation, subresource or namespace read from a request (real ones are under 64). */
const MAX_NAME_LENGTH = 256;

/**
 * Describes a value for an error message without echoing it: a string shortened and quoted, a
 * number or boolean as is, anything else by its type. Never converts an object to a string (a
 * `toString` key is data here, not a method) and never walks it (it may be 20,000 levels deep).
 */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(shorten(value));
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value === null || value === undefined) return 'null';
  return Array.isArray(value) ? 'a list' : 'an object';
}

/** Returns `parent[key]` when it is absent (or null) or a string within `max` characters; throws naming the field otherwise. */
function optionalString(parent: JsonObject, key: string, path: string, max: number = MAX_NAME_LENGTH): string | undefined {
  const value = parent[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new ReviewDecodeError(`${path} must be a string, not ${describeValue(value)}`);
  if (value.length > max) throw new ReviewDecodeError(`${path} is longer than ${max} characters`);
  return value;
}

/**
 * Reads an AdmissionReview, or throws a ReviewDecodeError saying what is wrong with it. Total: any
 * JSON value in any field gives either a decoded review or that error (HTTP 400), and the error's
 * message quotes at most a shortened string of the request.
 */
export function decodeReview(body: unknown): DecodedReview {
  if (!isObject(body)) throw new ReviewDecodeError('the body must be a JSON object (an AdmissionReview)');
  const apiVersion = body['apiVersion'];
  if (typeof apiVersion !== 'string' || !(REVIEW_VERSIONS as readonly string[]).includes(apiVersion)) {
    throw new ReviewDecodeError(`unsupported apiVersion ${describeValue(apiVersion)}: expected ${REVIEW_VERSIONS.join(' or ')}`);
  }
  if (body['kind'] !== 'AdmissionReview') {
    throw new ReviewDecodeError(`unsupported kind ${describeValue(body['kind'])}: expected AdmissionReview`);
  }
  const request = body['request'];
  if (!isObject(request)) throw new ReviewDecodeError('the AdmissionReview has no request object');
  const uid = request['uid'];
  if (typeof uid !== 'string' || uid === '' || uid.length > MAX_UID_LENGTH) {
    throw new ReviewDecodeError(`request.uid is missing or not a non-empty string of at most ${MAX_UID_LENGTH} characters`);
  }
  const kind = request['kind'];
  if (!isObject(kind)) throw new ReviewDecodeError('request.kind is missing or has no kind');
  const kindName = optionalString(kind, 'kind', 'request.kind.kind');
  if (kindName === undefined || kindName === '') throw new ReviewDecodeError('request.kind is missing or has no kind');
  const group = optionalString(kind, 'group', 'request.kind.group') ?? '';
  const operation = optionalString(request, 'operation', 'request.operation');
  if (operation === undefined) throw new ReviewDecodeError('request.operation is missing');
  const object = request['object'];
  if (operation === 'CREATE' && !isObject(object)) {
    throw new ReviewDecodeError('request.object is missing or not an object');
  }
  // The object must be what request.kind says it is; anything else is a confused client.
  const objectKind = isObject(object) ? object['kind'] : undefined;
  if (typeof objectKind === 'string' && objectKind !== kindName) {
    throw new ReviewDecodeError(`request.object is a ${shorten(objectKind)} but request.kind is ${shorten(kindName)}`);
  }
  const subResource = optionalString(request, 'subResource', 'request.subResource');
  const objectMetadata = isObject(object) && isObject(object['metadata']) ? object['metadata'] : undefined;
  const requestNamespace = optionalString(request, 'namespace', 'request.namespace');
  const objectNamespace = objectMetadata?.['namespace'];
  const namespace =
    requestNamespace !== undefined && requestNamespace !== ''
      ? requestNamespace
      : typeof objectNamespace === 'string' && objectNamespace.length <= MAX_NAME_LENGTH
        ? objectNamespace
        : '';
  const dryRun = request['dryRun'];
  if (dryRun !== undefined && dryRun !== null && typeof dryRun !== 'boolean') {
    throw new ReviewDecodeError(`request.dryRun must be true or false, not ${describeValue(dryRun)}`);
  }
  return {
    apiVersion: apiVersion as ReviewVersion,
    uid,
    context: admissionContext({
      // A `Pod` of another API group is not a pod.
      kind: group === '' ? kindName : `${kindName}.${group}`,
      operation,
      namespace,
      subResource,
    }),
    object,
  };
}

/** The response the injector gives: allowed with an optional patch, or denied with a status. */
export interface ReviewResponse {
  readonly allowed: boolean;
  readonly patch?: readonly Operation[];
  readonly warnings?: readonly string[];
  readonly status?: { readonly code: number; readonly reason: string; readonly message: string };
}

/** Returns the AdmissionReview answering request `uid` in the version `apiVersion`. */
export function encodeReview(apiVersion: ReviewVersion, uid: string, response: ReviewResponse): JsonObject {
  const body: JsonObject = { uid, allowed: response.allowed };
  if (response.patch !== undefined && response.patch.length > 0) {
    body['patchType'] = 'JSONPatch';
    body['patch'] = Buffer.from(JSON.stringify(response.patch)).toString('base64');
  }
  if (response.warnings !== undefined && response.warnings.length > 0) body['warnings'] = [...response.warnings];
  if (response.status !== undefined) body['status'] = { ...response.status };
  return { apiVersion, kind: 'AdmissionReview', response: body };
}

/** The start of an allowed answer in each version, up to the uid. */
const ALLOWED_PREFIX: Readonly<Record<ReviewVersion, string>> = {
  'admission.k8s.io/v1': '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":',
  'admission.k8s.io/v1beta1': '{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","response":{"uid":',
};

/**
 * Returns, as JSON text, the AdmissionReview allowing request `uid` with an already encoded patch:
 * the same bytes as JSON.stringify(encodeReview(apiVersion, uid, {allowed: true, patch, warnings})).
 */
export function encodeAllowedReviewText(apiVersion: ReviewVersion, uid: string, patchBase64: string, warnings: readonly string[]): string {
  let text = `${ALLOWED_PREFIX[apiVersion]}${JSON.stringify(uid)},"allowed":true`;
  // Base64 needs no escaping in JSON.
  if (patchBase64 !== '') text += `,"patchType":"JSONPatch","patch":"${patchBase64}"`;
  if (warnings.length > 0) text += `,"warnings":${JSON.stringify(warnings)}`;
  return `${text}}}`;
}

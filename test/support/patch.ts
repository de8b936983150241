// Applying a webhook's JSON Patch to the request object the way the API server does.
import jsonpatch, { type Operation } from 'fast-json-patch';

/** Returns `object` with `patch` applied (validated; the input is not modified). */
export function applyJsonPatch<T>(object: T, patch: readonly Operation[]): T {
  return jsonpatch.applyPatch(structuredClone(object), [...patch], true, false).newDocument;
}

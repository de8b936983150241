// Building AdmissionReview requests the way the API server sends them, and reading responses.
import { Buffer } from 'node:buffer';
import type { Operation } from 'fast-json-patch';

export interface ReviewOptions {
  readonly uid?: string;
  readonly apiVersion?: 'admission.k8s.io/v1' | 'admission.k8s.io/v1beta1';
  readonly namespace?: string;
  readonly operation?: string;
  readonly kind?: { group: string; version: string; kind: string };
  readonly subResource?: string;
}

/** Returns an AdmissionReview request for `object` (a pod unless `kind` says otherwise). */
export function reviewFor(object: unknown, options: ReviewOptions = {}): Record<string, unknown> {
  const kind = options.kind ?? { group: '', version: 'v1', kind: 'Pod' };
  return {
    apiVersion: options.apiVersion ?? 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: options.uid ?? '705ab4f5-6393-11e8-b7cc-42010a800002',
      kind,
      resource: { group: kind.group, version: kind.version, resource: `${kind.kind.toLowerCase()}s` },
      requestKind: kind,
      requestResource: { group: kind.group, version: kind.version, resource: `${kind.kind.toLowerCase()}s` },
      ...(options.subResource === undefined ? {} : { subResource: options.subResource }),
      namespace: options.namespace ?? 'demo',
      operation: options.operation ?? 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller', groups: ['system:serviceaccounts'] },
      object,
      oldObject: null,
      dryRun: false,
      options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
    },
  };
}

export interface DecodedResponse {
  readonly apiVersion: string;
  readonly uid: string;
  readonly allowed: boolean;
  readonly patch: Operation[];
  readonly patchType?: string;
  readonly warnings: string[];
  readonly status?: { code: number; message: string; reason: string };
}

/** Reads the response of an AdmissionReview, decoding the base64 patch. */
export function decodeResponse(body: unknown): DecodedResponse {
  const review = body as { apiVersion: string; kind: string; response: Record<string, unknown> };
  if (review.kind !== 'AdmissionReview') throw new Error(`not an AdmissionReview: ${JSON.stringify(body)}`);
  const r = review.response;
  const patch = typeof r['patch'] === 'string' ? (JSON.parse(Buffer.from(r['patch'], 'base64').toString('utf8')) as Operation[]) : [];
  return {
    apiVersion: review.apiVersion,
    uid: r['uid'] as string,
    allowed: r['allowed'] as boolean,
    patch,
    ...(typeof r['patchType'] === 'string' ? { patchType: r['patchType'] } : {}),
    warnings: (r['warnings'] as string[] | undefined) ?? [],
    ...(r['status'] === undefined ? {} : { status: r['status'] as { code: number; message: string; reason: string } }),
  };
}

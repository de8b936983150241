// The one constructor of AdmissionContext: the webhook, the CLI commands and the tests all describe
// what they know about a pod's admission through it.
import type { AdmissionContext } from './types.ts';

/** What is known about an admission; `kind` and `operation` default to a pod's creation. */
export interface AdmissionFacts {
  readonly namespace: string;
  readonly kind?: string;
  readonly operation?: string;
  readonly subResource?: string | undefined;
  readonly namespaceLabels?: Readonly<Record<string, string>> | undefined;
  readonly namespaceAnnotations?: Readonly<Record<string, string>> | undefined;
  readonly namespaceAnnotationsUnknown?: boolean | undefined;
  readonly workloadKind?: string | undefined;
}

/** Returns the admission context of `facts`, leaving out what is not known. */
export function admissionContext(facts: AdmissionFacts): AdmissionContext {
  return {
    kind: facts.kind ?? 'Pod',
    operation: facts.operation ?? 'CREATE',
    namespace: facts.namespace,
    ...(facts.subResource === undefined || facts.subResource === '' ? {} : { subResource: facts.subResource }),
    ...(facts.namespaceLabels === undefined ? {} : { namespaceLabels: facts.namespaceLabels }),
    ...(facts.namespaceAnnotations === undefined ? {} : { namespaceAnnotations: facts.namespaceAnnotations }),
    ...(facts.namespaceAnnotationsUnknown === true ? { namespaceAnnotationsUnknown: true } : {}),
    ...(facts.workloadKind === undefined ? {} : { workloadKind: facts.workloadKind }),
  };
}

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

/**
 * Returns the admission context of `facts`, leaving out what is not known. Every admission makes
 * one: the known facts are added one by one to a literal (fast shape transitions), not spread.
 */
export function admissionContext(facts: AdmissionFacts): AdmissionContext {
  const context: { -readonly [K in keyof AdmissionContext]: AdmissionContext[K] } = {
    kind: facts.kind ?? 'Pod',
    operation: facts.operation ?? 'CREATE',
    namespace: facts.namespace,
  };
  if (facts.subResource !== undefined && facts.subResource !== '') context.subResource = facts.subResource;
  if (facts.namespaceLabels !== undefined) context.namespaceLabels = facts.namespaceLabels;
  if (facts.namespaceAnnotations !== undefined) context.namespaceAnnotations = facts.namespaceAnnotations;
  if (facts.namespaceAnnotationsUnknown === true) context.namespaceAnnotationsUnknown = true;
  if (facts.workloadKind !== undefined) context.workloadKind = facts.workloadKind;
  return context;
}

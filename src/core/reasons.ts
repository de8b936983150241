// The stable reason codes of every decision and warning, and the one table of their sentences.
// Logs, metrics, AdmissionResponse warnings and `envoy-injector explain` all read these codes.
import { INJECT_ANNOTATION, INJECT_LABEL, PROXY_PORTS, PROXY_UID } from '../constants.ts';

/** What a decision does with the pod. */
export type Action = 'inject' | 'skip' | 'deny';

const ports = PROXY_PORTS.join(', ');

/** Reason codes, the action each leads to, and the sentence a user reads. */
export const REASONS = {
  // allowed unchanged: the request is not a pod creation
  'not-a-pod': { action: 'skip', sentence: 'The object is not a Pod; only Pods are injected.' },
  'not-create': { action: 'skip', sentence: 'Only pod creation is injected; other operations pass unchanged.' },
  subresource: { action: 'skip', sentence: 'The request is for a subresource of the pod, which is never injected.' },
  // skips, in decision order (SPEC.md §3)
  'namespace-excluded': {
    action: 'skip',
    sentence: "The namespace is excluded from injection by the injector's configuration (excludedNamespaces).",
  },
  'namespace-disabled': { action: 'skip', sentence: `The namespace is labelled ${INJECT_LABEL}=disabled.` },
  'namespace-not-enabled': {
    action: 'skip',
    sentence: `Neither the namespace nor the pod carries the label ${INJECT_LABEL}=enabled.`,
  },
  'disabled-by-annotation': { action: 'skip', sentence: `The pod opts out with the annotation ${INJECT_ANNOTATION}: "false".` },
  'disabled-by-pod-label': { action: 'skip', sentence: `The pod is labelled ${INJECT_LABEL}=disabled.` },
  'invalid-inject-annotation': {
    action: 'skip',
    sentence: `The annotation ${INJECT_ANNOTATION} is neither "true" nor "false", so the pod is left alone.`,
  },
  'host-network': {
    action: 'skip',
    sentence: "The pod uses hostNetwork: its iptables rules would rewrite the node's own network.",
  },
  'already-injected': {
    action: 'skip',
    sentence: 'The pod already carries the proxy (status annotation or an envoy/envoy-init container); nothing to add.',
  },
  'other-mesh-present': {
    action: 'skip',
    sentence: "The pod already runs another mesh's proxy; two proxies capturing the same traffic would break it.",
  },
  // denials: injecting would produce a broken pod
  'invalid-pod': { action: 'deny', sentence: 'The object is not a well-formed Pod:' },
  'invalid-annotations': { action: 'deny', sentence: 'Some envoy-injector.io annotations have invalid values.' },
  'proxy-port-conflict': { action: 'deny', sentence: `A container of the pod declares a port the proxy needs (${ports}).` },
  'name-conflict': { action: 'deny', sentence: 'The pod already has a volume with a name the injector needs.' },
  // injections
  'enabled-by-namespace': { action: 'inject', sentence: `Injection is enabled for the namespace (label ${INJECT_LABEL}=enabled).` },
  'enabled-by-pod-label': { action: 'inject', sentence: `The pod opts in with the label ${INJECT_LABEL}=enabled.` },
  'enabled-by-annotation': { action: 'inject', sentence: `The pod opts in with the annotation ${INJECT_ANNOTATION}: "true".` },
} as const satisfies Record<string, { action: Action; sentence: string }>;

export type ReasonCode = keyof typeof REASONS;

/** One reason of a decision: a stable code and the sentence (with details) a user reads. */
export interface Reason {
  readonly code: ReasonCode;
  readonly message: string;
  /** What is specific to this pod (a value, a container name), also part of the message. */
  readonly detail?: string;
}

/** Returns the reason for `code`, its sentence followed by `detail` when given. */
export function reason(code: ReasonCode, detail?: string): Reason {
  const sentence = REASONS[code].sentence;
  return detail === undefined ? { code, message: sentence } : { code, message: `${sentence} ${detail}`, detail };
}

/** Warning codes: things the user should know although the pod is admitted. */
export const WARNINGS = {
  'host-network': "The pod was not injected because it uses hostNetwork (iptables would rewrite the node's network).",
  'invalid-inject-annotation': `The pod was not injected because its ${INJECT_ANNOTATION} annotation is not "true" or "false".`,
  'other-mesh-present': "The pod was not injected because it already runs another mesh's proxy.",
  'proxy-uid-container': `A container runs as UID ${PROXY_UID}, the proxy's UID: its traffic bypasses the proxy.`,
  'pod-will-not-complete':
    'The pod runs to completion but the proxy is a classic sidecar that never exits, so the pod will not complete.',
  'unknown-annotation': 'An envoy-injector.io annotation is not known to the injector (likely a typo).',
  'drain-exceeds-grace-period': "The proxy's drain time is not shorter than the pod's termination grace period: the pod is killed before the drain ends.",
  'native-sidecar-unsupported':
    'The pod asks for a native sidecar, but the cluster was not found to support them (Kubernetes ≥ 1.29): on an older cluster the envoy init container never finishes and the pod never starts.',
} as const;

export type WarningCode = keyof typeof WARNINGS;

/** A warning returned to the client (kubectl prints it) and shown by `explain`. */
export interface Warning {
  readonly code: WarningCode;
  readonly message: string;
}

/** Returns the warning for `code`, its sentence followed by `detail` when given. */
export function warning(code: WarningCode, detail?: string): Warning {
  const sentence = WARNINGS[code];
  return { code, message: detail === undefined ? sentence : `${sentence} ${detail}` };
}

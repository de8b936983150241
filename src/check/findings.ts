// The stable kebab-case codes of what `envoy-injector check` finds, like the reason codes of a
// decision: each says which check produced it, how bad it is, and what it means in one sentence.
// The text and JSON outputs, and the README, all read this table.
import type { ProxyDifference } from '../core/differences.ts';

/** How bad a finding is: `fail` makes `check` exit non-zero. */
export type FindingLevel = 'ok' | 'info' | 'warn' | 'fail';

/** The part of the installation a finding is about. */
export type FindingCheck = 'webhook-configuration' | 'ca-bundle' | 'service' | 'nodes' | 'namespaces' | 'pods';

/** Finding codes: the check, the level and the sentence saying what each means. */
export const FINDINGS = {
  'webhook-configuration-ok': {
    check: 'webhook-configuration',
    level: 'ok',
    sentence: "The MutatingWebhookConfiguration exists and its webhooks call the injector's Service.",
  },
  'webhook-configuration-missing': {
    check: 'webhook-configuration',
    level: 'fail',
    sentence: 'The MutatingWebhookConfiguration is missing: nothing calls the injector.',
  },
  'webhook-configuration-empty': { check: 'webhook-configuration', level: 'fail', sentence: 'The MutatingWebhookConfiguration has no webhooks.' },
  'webhook-calls-url': {
    check: 'webhook-configuration',
    level: 'warn',
    sentence: "A webhook calls a URL rather than the injector's Service.",
  },
  'webhook-calls-other-service': {
    check: 'webhook-configuration',
    level: 'warn',
    sentence: 'A webhook calls another Service than the one the config names.',
  },
  'webhook-wrong-path': { check: 'webhook-configuration', level: 'fail', sentence: 'A webhook calls a path other than /mutate.' },
  'ca-bundle-missing': {
    check: 'ca-bundle',
    level: 'fail',
    sentence: 'A webhook has no caBundle: the API server cannot verify the injector.',
  },
  'secret-unreadable': {
    check: 'ca-bundle',
    level: 'warn',
    sentence: 'The Secret of the serving certificate cannot be read, so the caBundle is not compared with it.',
  },
  'secret-missing': { check: 'ca-bundle', level: 'fail', sentence: 'The Secret of the serving certificate does not exist.' },
  'secret-without-certificate': { check: 'ca-bundle', level: 'fail', sentence: 'The Secret holds no serving certificate.' },
  'ca-bundle-untrusting': {
    check: 'ca-bundle',
    level: 'fail',
    sentence: "A webhook's caBundle does not trust the serving certificate: the API server's calls fail TLS.",
  },
  'ca-bundle-trusted': { check: 'ca-bundle', level: 'ok', sentence: "Every webhook's caBundle trusts the serving certificate." },
  'certificate-wrong-name': {
    check: 'ca-bundle',
    level: 'fail',
    sentence: 'The serving certificate does not name the host the API server calls (<service>.<namespace>.svc).',
  },
  'certificate-expired': { check: 'ca-bundle', level: 'fail', sentence: 'The serving certificate has expired.' },
  'certificate-expiring': {
    check: 'ca-bundle',
    level: 'warn',
    sentence: 'The serving certificate expires within tls.renewBeforeDays.',
  },
  'service-missing': { check: 'service', level: 'fail', sentence: "The injector's Service does not exist: the API server cannot reach it." },
  'service-port-missing': { check: 'service', level: 'fail', sentence: 'The Service lacks the port the webhooks call.' },
  'service-no-ready-endpoints': {
    check: 'service',
    level: 'fail',
    sentence: 'The Service has no ready endpoint: the pod creations the webhooks match fail meanwhile.',
  },
  'service-single-endpoint': {
    check: 'service',
    level: 'warn',
    sentence: 'The Service has one ready endpoint: a single point of failure.',
  },
  'service-ready': { check: 'service', level: 'ok', sentence: 'The Service has ready endpoints.' },
  'native-sidecar-unchecked': {
    check: 'nodes',
    level: 'warn',
    sentence: "Whether the nodes' kubelets run native sidecars could not be checked.",
  },
  'native-sidecar-resolved': { check: 'nodes', level: 'info', sentence: 'How nativeSidecar: auto resolves on this cluster.' },
  'kubelets-run-native-sidecars': { check: 'nodes', level: 'ok', sentence: 'Every kubelet runs native sidecars (1.29 or later).' },
  'kubelets-too-old': {
    check: 'nodes',
    level: 'warn',
    sentence: 'With nativeSidecar: true, injected pods scheduled on nodes whose kubelet is older than 1.29 hang in Init.',
  },
  'kubelets-too-old-for-auto': {
    check: 'nodes',
    level: 'warn',
    sentence: 'Some kubelets are older than 1.29: a replica started before such a node joined injects native sidecars that hang there.',
  },
  'no-namespace-labelled': {
    check: 'namespaces',
    level: 'warn',
    sentence: 'No namespace is labelled for injection: only pods labelled so are injected.',
  },
  'namespaces-labelled': { check: 'namespaces', level: 'ok', sentence: 'The namespaces labelled for injection.' },
  'pod-security-enforced': {
    check: 'namespaces',
    level: 'warn',
    sentence:
      'A labelled namespace enforces a Pod Security level that refuses every pod injected in capture mode init, the mode in use (envoy-init needs root with NET_ADMIN and NET_RAW); capture mode cni would be admitted.',
  },
  'pod-security-warned': {
    check: 'namespaces',
    level: 'info',
    sentence: 'A labelled namespace has kubectl print a Pod Security warning for every pod injected in capture mode init, the mode in use.',
  },
  'pod-security-cni-only': {
    check: 'namespaces',
    level: 'ok',
    sentence: 'A labelled namespace enforces a Pod Security level that admits injected pods in capture mode cni only — the mode in use.',
  },
  'capture-modes-admitted': {
    check: 'namespaces',
    level: 'info',
    sentence: 'The labelled namespaces whose Pod Security admits injected pods in either capture mode (init or cni).',
  },
  'namespace-annotation-invalid': {
    check: 'namespaces',
    level: 'warn',
    sentence: "A labelled namespace's default for its pods' settings is invalid: pods there that do not set it themselves would be denied.",
  },
  'namespaces-excluded': { check: 'namespaces', level: 'info', sentence: 'Namespaces labelled for injection but excluded by the config.' },
  'pod-not-injected': {
    check: 'pods',
    level: 'fail',
    sentence: 'A pod runs without the proxy although it would be injected now (created while the webhook was unreachable, or before injection was enabled).',
  },
  'pod-stale-proxy': {
    check: 'pods',
    level: 'warn',
    sentence: "A pod's proxy was injected with another configuration or injector version than today's.",
  },
  'pod-would-be-denied': { check: 'pods', level: 'warn', sentence: 'A pod runs without the proxy and would be refused now.' },
  'bootstrap-override-valid': {
    check: 'pods',
    level: 'ok',
    sentence: "A bootstrap override ConfigMap that pods name holds a fragment Envoy accepts, without a clash with the injector's bootstrap.",
  },
  'bootstrap-override-missing': {
    check: 'pods',
    level: 'fail',
    sentence: 'A bootstrap override ConfigMap that pods name, or its key envoy.yaml, does not exist: those pods cannot start.',
  },
  'bootstrap-override-invalid': {
    check: 'pods',
    level: 'fail',
    sentence: "A bootstrap override ConfigMap's fragment clashes with the injector's bootstrap or would be refused by Envoy: envoy-init fails in those pods.",
  },
  'bootstrap-override-unreadable': { check: 'pods', level: 'warn', sentence: 'A bootstrap override ConfigMap could not be read with this kubeconfig (403).' },
  'pods-healthy': { check: 'pods', level: 'ok', sentence: "A namespace's running pods, all as the injector would make them." },
  'pods-need-attention': { check: 'pods', level: 'info', sentence: "A namespace's running pods, some of them stale, not injected or refused." },
} as const satisfies Record<string, { check: FindingCheck; level: FindingLevel; sentence: string }>;

export type FindingCode = keyof typeof FINDINGS;

/** One thing `check` reports: a stable code, its check and level, and the message for this installation. */
export interface Finding {
  readonly code: FindingCode;
  readonly level: FindingLevel;
  readonly check: FindingCheck;
  readonly message: string;
  /** pod-stale-proxy: what differs between the pod's proxy and the one injecting it now gives. */
  readonly differences?: readonly ProxyDifference[];
}

/** Returns the finding `code` with its message (and, for a stale pod, what differs). */
export function finding(code: FindingCode, message: string, differences?: readonly ProxyDifference[]): Finding {
  const { check, level } = FINDINGS[code];
  return { code, level, check, message, ...(differences === undefined ? {} : { differences }) };
}

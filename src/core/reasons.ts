// The stable reason codes of every decision and warning, and the one table of their sentences.
// Logs, metrics, AdmissionResponse warnings and `envoy-injector explain` all read these codes.
import { INJECT_ANNOTATION, INJECT_LABEL, PROXY_PORTS } from '../constants.ts';

/** What a decision does with the pod. */
export type Action = 'inject' | 'skip' | 'deny' | 'reorder';

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
  'windows-pod': {
    action: 'skip',
    sentence: "The pod runs on Windows nodes, where envoy-init's iptables rules and the Linux Envoy sidecar cannot run.",
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
  'api-server-lacks-native-sidecars': {
    action: 'deny',
    sentence:
      'The pod asks for a native sidecar, but the API server is older than Kubernetes 1.29: it would drop the sidecar\'s restartPolicy and refuse the pod.',
  },
  // re-invocation: an injected pod whose init containers another webhook put out of order (reorder.ts)
  'envoy-init-not-last': {
    action: 'reorder',
    sentence:
      'Another webhook added init containers after envoy-init, which would run with traffic captured and no proxy: envoy-init is moved last again.',
  },
  'envoy-not-after-envoy-init': {
    action: 'reorder',
    sentence:
      'Another webhook put init containers between envoy-init and envoy, which would run with traffic captured before the proxy starts: envoy is moved right after envoy-init again.',
  },
  'exec-too-large': {
    action: 'deny',
    sentence: 'An injected container would get an argument or environment string larger than Linux lets a program start with (128 KiB each, 1 MiB in all), so it could never run.',
  },
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

/**
 * Warning codes and their sentences: what the user should know although the pod is admitted.
 * kubectl prints each one as a line (`Warning: envoy-injector: …`), so each says what happened and,
 * where there is one, the fix. Kubernetes asks for warnings under 120 characters where possible;
 * with the transport's 16-character prefix, each sentence with typical values stays within that
 * (test/warnings.test.ts checks it). `{name}` marks a value filled in for the pod.
 */
export const WARNINGS = {
  // skips a user would not expect
  'namespace-excluded': "Pod not injected although it opts in: the injector's config excludes namespace {namespace}.",
  'invalid-inject-annotation': `Pod not injected: annotation ${INJECT_ANNOTATION} is {value}; use "true" or "false".`,
  'host-network': "Pod not injected: it uses hostNetwork, and capturing its traffic would rewrite the node's network.",
  'windows-pod': 'Pod not injected: it runs on Windows nodes, where iptables capture and the Linux proxy cannot run.',
  'container-name-taken': 'Pod not injected: its container name {name} is reserved for the proxy; rename it to inject the pod.',
  'other-mesh-present': "Pod not injected: another mesh's proxy already captures its traffic ({containers}).",
  // injected, but something will not work as the user expects
  'proxy-uid-container': "Container {container} runs as {identity}, the proxy's, so its traffic bypasses the proxy.",
  'pod-will-not-complete': 'Pod will not complete: classic sidecars never exit. {fix}',
  'qos-downgraded': "Pod loses Guaranteed QoS: the injected containers' requests differ from their limits.",
  'drain-exceeds-grace-period':
    'Proxy drain ({drain}s) is not shorter than terminationGracePeriodSeconds ({grace}s): it will be cut off.',
  'unknown-annotation': 'Ignored unknown annotation {annotation}.{suggestion}',
  'more-unknown-annotations': 'Ignored {count} more unknown {prefix} annotations.',
  'native-sidecar-unsupported': 'Pod asks for a native sidecar, but this cluster lacks them (needs 1.29+): it would never start.',
  'namespace-defaults-unknown': "Namespace {namespace}'s envoy-injector.io defaults could not be read: injected with the config's.",
} as const;

export type WarningCode = keyof typeof WARNINGS;

/** Warnings that only restate why a pod was skipped (the skip itself already says it). */
export const SKIP_WARNING_CODES: ReadonlySet<WarningCode> = new Set<WarningCode>([
  'namespace-excluded',
  'invalid-inject-annotation',
  'host-network',
  'windows-pod',
  'container-name-taken',
  'other-mesh-present',
]);

/** The `{name}` placeholders of a warning sentence. */
type Slots<S extends string> = S extends `${string}{${infer Name}}${infer Rest}` ? Name | Slots<Rest> : never;

/** The values a warning's sentence needs, by placeholder name (none for a fixed sentence). */
export type WarningValues<C extends WarningCode> = [Slots<(typeof WARNINGS)[C]>] extends [never]
  ? []
  : [Readonly<Record<Slots<(typeof WARNINGS)[C]>, string>>];

/** A warning returned to the client (kubectl prints it) and shown by `explain`. */
export interface Warning {
  readonly code: WarningCode;
  readonly message: string;
}

/** Returns the warning for `code`, its sentence with the placeholders filled in. */
export function warning<C extends WarningCode>(code: C, ...values: WarningValues<C>): Warning {
  const filled = values[0] as Readonly<Record<string, string>> | undefined;
  const message = WARNINGS[code].replace(/\{([a-z]+)\}/g, (_, name: string) => filled?.[name] ?? '');
  return { code, message };
}

/** Longest user-supplied value quoted in a message; longer ones are shortened with an ellipsis. */
const MAX_QUOTED_LENGTH = 40;

/** A control character (\p{Cc}: U+0000–U+001F, U+007F–U+009F), which shorten replaces. */
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Returns `value` fit to quote in a one-line message: at most 40 characters, control characters
 * shown as spaces (a warning with a control character would be dropped by the API server).
 */
export function shorten(value: string, max: number = MAX_QUOTED_LENGTH): string {
  // Most values (every name of a pod the API server sends) are short and printable: as they are.
  if (value.length <= max && !CONTROL_CHARACTER.test(value)) return value;
  // Only the head is read: a value may be megabytes long. `max` characters take at most 2 × max
  // UTF-16 units (surrogate pairs), so a head one character longer tells whether it is cut.
  const head = value.length > 2 * max + 2 ? value.slice(0, 2 * max + 2) : value;
  const chars = Array.from(head.replace(/\p{Cc}/gu, ' '));
  return chars.length <= max && head.length === value.length ? chars.join('') : `${chars.slice(0, max - 1).join('')}…`;
}

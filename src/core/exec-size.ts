// Whether an injected container can be started at all: Linux refuses to exec a program whose
// argument or environment string exceeds MAX_ARG_STRLEN, or whose strings together exceed ARG_MAX
// (E2BIG), and the pod then hangs in Init or CrashLoopBackOff with nothing pointing at the cause.
// Checked before answering, so such a pod is denied with what made it big instead.
import type { ResolvedSetting } from './overrides.ts';
import { annotationKey } from './settings.ts';
import { MAX_EXEC_STRING_BYTES } from './sidecar.ts';
import type { Container } from './types.ts';

/**
 * What all the argument and environment strings of one injected container may add up to: half of
 * the usual ARG_MAX (2 MiB with the default 8 MiB stack), since the kubelet adds variables of its
 * own (service links: several per Service of the namespace).
 */
export const MAX_EXEC_TOTAL_BYTES = 1024 * 1024;
/** What expanding the downward-API references can add to one string (names, namespace, node, IPs). */
const EXPANSION_ROOM_BYTES = 4 * 1024;

/** The string of an injected container that is too large for exec, and how large it is. */
export interface ExecSizeProblem {
  readonly container: string;
  /** `argument --flag`, `environment variable NAME`, or `arguments and environment` for the total. */
  readonly what: string;
  /** The envoy-init flag (without `--`) of the argument, when it is one. */
  readonly flag?: string;
  readonly bytes: number;
  readonly limit: number;
}

/**
 * Bytes exec needs for `text` once the kubelet has expanded its `$(NAME)` references, NUL
 * included: each reference to one of `known` (a variable with a literal value, and its size in
 * bytes) is counted at that size, and any reference at all gets room for the downward-API values
 * the kubelet fills in. Counted, not expanded: a bootstrap is kilobytes, and this runs for every
 * injection.
 */
function execBytes(text: string, known: ReadonlyMap<string, number>): number {
  const bytes = Buffer.byteLength(text) + 1;
  if (!text.includes('$(')) return bytes;
  let expanded = bytes + EXPANSION_ROOM_BYTES;
  for (const [name, size] of known) {
    const reference = `$(${name})`;
    for (let at = text.indexOf(reference); at !== -1; at = text.indexOf(reference, at + reference.length)) expanded += size - reference.length;
  }
  return expanded;
}

/**
 * Returns the first argument or environment string of `container` that exec would refuse (each
 * once the kubelet has expanded its `$(VAR)` references to the container's own variables), or the
 * total when all of them together are over MAX_EXEC_TOTAL_BYTES; undefined when the container can
 * start. Runs for every injection, so it only counts; a description is made for an offender only.
 */
export function execSizeProblem(container: Container): ExecSizeProblem | undefined {
  const env = container.env ?? [];
  const known = new Map<string, number>();
  for (const e of env) if (e.value !== undefined) known.set(e.name, Buffer.byteLength(e.value));
  let total = 0;
  for (const arg of [...(container.command ?? []), ...(container.args ?? [])]) {
    const bytes = execBytes(arg, known);
    if (bytes > MAX_EXEC_STRING_BYTES) {
      const flag = /^--([a-z0-9-]+)=/.exec(arg)?.[1];
      const what = `argument ${flag === undefined ? JSON.stringify(arg.slice(0, 40)) : `--${flag}`}`;
      return { container: container.name, what, ...(flag === undefined ? {} : { flag }), bytes, limit: MAX_EXEC_STRING_BYTES };
    }
    total += bytes;
  }
  for (const e of env) {
    // `NAME=value`: the name and `=` are part of the string.
    const bytes = Buffer.byteLength(e.name) + 1 + execBytes(e.value ?? '', known);
    if (bytes > MAX_EXEC_STRING_BYTES) return { container: container.name, what: `environment variable ${e.name}`, bytes, limit: MAX_EXEC_STRING_BYTES };
    total += bytes;
  }
  return total > MAX_EXEC_TOTAL_BYTES
    ? { container: container.name, what: 'arguments and environment', bytes: total, limit: MAX_EXEC_TOTAL_BYTES }
    : undefined;
}

/**
 * Returns the detail of an exec-too-large denial: which string, its size, and where the setting
 * behind it came from (the pod's annotation, its namespace's, or the injector's config), from the
 * pod's resolved settings.
 */
export function describeExecSizeProblem(problem: ExecSizeProblem, resolved: readonly ResolvedSetting[], namespace: string): string {
  const behind = problem.flag === undefined ? undefined : resolved.find((r) => r.setting.pod?.flag === problem.flag);
  const name = behind?.setting.pod?.annotation;
  let source = '';
  if (behind !== undefined && name !== undefined) {
    if (behind.source === 'pod') source = ` It comes from the annotation ${annotationKey(name)}: shorten its list.`;
    else if (behind.source === 'namespace') source = ` It comes from the annotation ${annotationKey(name)} of the namespace ${namespace}: shorten its list.`;
    else source = ` It comes from the injector's configuration (${behind.setting.key}), not from the pod.`;
  }
  return `(${problem.container} ${problem.what}: ${problem.bytes} bytes, over ${problem.limit}.)${source}`;
}

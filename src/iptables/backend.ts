// Choosing the iptables backend (nft or legacy). Both kinds of tables can exist side by side in a
// network namespace and the kernel evaluates both, so the rules must go where the namespace's other
// rules are: mixing them is how injectors break pods. Pure: probe results in, decision out.
import { mostRelevant, type Failure } from './failures.ts';

/** The two iptables backends: nf_tables (`iptables-nft`) and x_tables (`iptables-legacy`). */
export type Backend = 'nft' | 'legacy';
/** Every backend, in order of preference. */
export const BACKENDS: readonly Backend[] = ['nft', 'legacy'];

/** `auto` detects; the others force a backend. */
export type BackendRequest = 'auto' | Backend;
/** The values `--backend` accepts. */
export const BACKEND_REQUESTS: readonly BackendRequest[] = ['auto', ...BACKENDS];

/** What looking at one backend in the pod's namespace found. */
export type BackendProbe =
  | {
      readonly backend: Backend;
      readonly usable: true;
      /** Rules its tables hold in this namespace (all tables, IPv4 and IPv6). */
      readonly ruleCount: number;
      /** Whether a previous run of the capture left its chains there. */
      readonly holdsCapture: boolean;
    }
  | { readonly backend: Backend; readonly usable: false; readonly problem: Failure };

/** The backend to use and why (with a warning when the namespace mixes backends), or why none can be used. */
export type BackendChoice =
  | { readonly ok: true; readonly backend: Backend; readonly reason: string; readonly warning?: string }
  | { readonly ok: false; readonly failure: Failure };

/**
 * Decides the backend: a forced one if usable; else the one whose tables already hold rules in the
 * namespace (the one holding our own chains if both do); else nft when usable, else legacy.
 */
export function chooseBackend(probes: readonly BackendProbe[], request: BackendRequest): BackendChoice {
  const probe = (backend: Backend) => probes.find((p) => p.backend === backend);
  const rules = (p: BackendProbe | undefined): number => (p?.usable ? p.ruleCount : 0);

  if (request !== 'auto') {
    const forced = probe(request);
    if (forced === undefined || !forced.usable) {
      const problem = forced?.usable === false ? forced.problem : { kind: 'failed' as const, message: 'not probed' };
      return { ok: false, failure: { kind: problem.kind, message: `--backend=${request} is not usable: ${problem.message}` } };
    }
    const other = probe(request === 'nft' ? 'legacy' : 'nft');
    return {
      ok: true,
      backend: request,
      reason: `forced by --backend=${request}`,
      ...(rules(other) > 0
        ? { warning: `the ${other?.backend} tables of this namespace hold ${rules(other)} rules; the capture goes to ${request} as forced` }
        : {}),
    };
  }

  const usable = probes.filter((p): p is Extract<BackendProbe, { usable: true }> => p.usable);
  const withRules = usable.filter((p) => p.ruleCount > 0);
  if (withRules.length === 1) {
    const [only] = withRules as [Extract<BackendProbe, { usable: true }>];
    return { ok: true, backend: only.backend, reason: `its tables already hold ${only.ruleCount} rules in this network namespace` };
  }
  if (withRules.length > 1) {
    const ours = withRules.find((p) => p.holdsCapture);
    const chosen = ours ?? withRules.find((p) => p.backend === 'nft') ?? (withRules[0] as (typeof withRules)[number]);
    const counts = withRules.map((p) => `${p.backend} ${p.ruleCount}`).join(', ');
    return {
      ok: true,
      backend: chosen.backend,
      reason: ours ? 'it holds the chains of a previous run' : 'both backends hold rules; nft preferred',
      warning: `both backends hold rules in this network namespace (${counts})`,
    };
  }
  const preferred = usable.find((p) => p.backend === 'nft') ?? usable[0];
  if (preferred === undefined) {
    const problems = probes.flatMap((p) => (p.usable ? [] : [p.problem]));
    const kind = mostRelevant(problems)?.kind ?? 'failed';
    const detail = probes.map((p) => `${p.backend}: ${p.usable ? 'usable' : p.problem.message}`).join('; ');
    return { ok: false, failure: { kind, message: `no usable iptables backend (${detail})` } };
  }
  const nft = probe('nft');
  return {
    ok: true,
    backend: preferred.backend,
    reason:
      preferred.backend === 'nft'
        ? 'no rules in this network namespace yet; nft preferred'
        : `no rules in this network namespace yet; nft is not usable (${nft?.usable === false ? nft.problem.message : 'not probed'})`,
  };
}

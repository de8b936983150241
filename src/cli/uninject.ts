// `envoy-injector uninject -f FILE|DIR|-`: removes from every pod and pod template exactly what
// injection added (core/uninject.ts), as a JSON Patch applied to its document, so that every other
// byte stays; `uninject | inject` re-injects with the current config.
import { planUninjection } from '../core/uninject.ts';
import { describeManifestTarget, manifestTargets, patchManifest, type ManifestSource } from './manifests.ts';

/** What happened to one pod or pod template. */
export interface UninjectReport {
  readonly target: string;
  readonly outcome: 'removed' | 'not-injected' | 'refused';
  /** For `refused`, why; for `removed`, what was kept although injection may have added it. */
  readonly notes: readonly string[];
}

/** Uninjects every pod and pod template of the sources in place; returns what happened to each. */
export function uninjectSources(sources: readonly ManifestSource[]): UninjectReport[] {
  const reports: UninjectReport[] = [];
  const several = sources.length > 1;
  for (const source of sources) {
    for (const manifest of source.manifests) {
      for (const target of manifestTargets(manifest)) {
        const described = describeManifestTarget(target, manifest, several);
        const plan = planUninjection(target.pod);
        if (plan.state === 'removed') patchManifest(source, manifest, target.path, plan.patch);
        const notes = plan.state === 'refused' ? [plan.problem] : plan.state === 'removed' ? plan.kept : [];
        reports.push({ target: described, outcome: plan.state, notes });
      }
    }
  }
  return reports;
}

/** The lines for standard error: each pod left as it was, and what was kept where something was. */
export function formatUninjectReports(reports: readonly UninjectReport[]): string[] {
  return reports.flatMap((report) => {
    if (report.outcome === 'refused') return [`${report.target}: not uninjected: ${report.notes.join('; ')}; it is printed as it was`];
    if (report.outcome === 'not-injected') return [`${report.target}: not injected: nothing to remove`];
    return report.notes.map((note) => `${report.target}: kept ${note}`);
  });
}

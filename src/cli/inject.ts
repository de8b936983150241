// `envoy-injector inject -f FILE|DIR|-`: the webhook's injection applied offline to manifests. Each
// pod and pod template gets exactly the JSON Patch the webhook would return for it, applied to its
// document (manifests.ts), so the rest of every document, comments included, stays as it was.
import { admissionContext } from '../core/context.ts';
import { injectPod, type InjectionResult } from '../core/inject.ts';
import { SKIP_WARNING_CODES } from '../core/reasons.ts';
import type { InjectorConfig, InjectorRuntime } from '../core/types.ts';
import { describeManifestTarget, manifestTargets, outputFormatOf, parseSource, patchManifest, printSources, type ManifestSource } from './manifests.ts';

/** What happened to one pod or pod template of the input. */
export interface TargetReport {
  readonly target: string;
  readonly kind: string;
  readonly name: string;
  readonly namespace: string;
  readonly result: InjectionResult;
}

/** Injects every pod and pod template of the sources in place; returns what happened to each. */
export function injectSources(
  sources: readonly ManifestSource[],
  config: InjectorConfig,
  runtime: InjectorRuntime,
  defaultNamespace: string,
  namespaceAnnotations?: Readonly<Record<string, string>>,
): TargetReport[] {
  const reports: TargetReport[] = [];
  const several = sources.length > 1;
  for (const source of sources) {
    for (const manifest of source.manifests) {
      for (const target of manifestTargets(manifest)) {
        const namespace = target.namespace ?? defaultNamespace;
        const ctx = admissionContext({ namespace, workloadKind: target.kind, namespaceAnnotations });
        const result = injectPod(target.pod, ctx, config, runtime);
        reports.push({ target: describeManifestTarget(target, manifest, several), kind: target.kind, name: target.name, namespace, result });
        patchManifest(source, manifest, target.path, result.patch);
      }
    }
  }
  return reports;
}

export interface InjectDocumentsResult {
  /** The whole stream: injected documents patched, every other document as it was. */
  readonly output: string;
  readonly reports: readonly TargetReport[];
}

/** Injects one source's text (YAML or JSON) and prints it back in its own format. */
export function injectDocuments(
  text: string,
  source: string,
  config: InjectorConfig,
  runtime: InjectorRuntime,
  defaultNamespace: string,
  namespaceAnnotations?: Readonly<Record<string, string>>,
): InjectDocumentsResult {
  const sources = [parseSource({ name: source, text })];
  const reports = injectSources(sources, config, runtime, defaultNamespace, namespaceAnnotations);
  return { output: printSources(sources, outputFormatOf(sources, undefined)), reports };
}

/** One line per pod that was not injected (and per warning), for standard error. */
export function formatInjectReports(reports: readonly TargetReport[]): string[] {
  const lines: string[] = [];
  for (const report of reports) {
    const { decision, warnings } = report.result;
    const reasons = decision.reasons.map((r) => `[${r.code}] ${r.message}`).join(' ');
    if (decision.action === 'skip') lines.push(`${report.target}: skipped: ${reasons}`);
    else if (decision.action === 'deny') lines.push(`${report.target}: error: ${reasons}`);
    else if (decision.action === 'reorder') lines.push(`${report.target}: reordered: ${reasons}`);
    // A surprising skip is also a warning; the skip line above already says it.
    for (const w of warnings) {
      if (decision.action !== 'skip' || !SKIP_WARNING_CODES.has(w.code)) lines.push(`${report.target}: warning: [${w.code}] ${w.message}`);
    }
  }
  return lines;
}

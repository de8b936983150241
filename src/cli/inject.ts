// `envoy-injector inject -f FILE|-`: the webhook's injection applied offline to manifests.
import { admissionContext } from '../core/context.ts';
import { injectPod, type InjectionResult } from '../core/inject.ts';
import { SKIP_WARNING_CODES } from '../core/reasons.ts';
import type { InjectorConfig, InjectorRuntime } from '../core/types.ts';
import { createQuotedNode, describeTarget, findPodTargets, parseDocuments, stringifyDocuments } from './documents.ts';

/** What happened to one pod or pod template of the input. */
export interface TargetReport {
  readonly target: string;
  readonly documentIndex: number;
  readonly kind: string;
  readonly name: string;
  readonly namespace: string;
  readonly result: InjectionResult;
}

export interface InjectDocumentsResult {
  /** The whole stream: injected documents rewritten, every other document as it was. */
  readonly output: string;
  readonly reports: readonly TargetReport[];
}

/** Runs the injection over every pod and pod template in a YAML stream. */
export function injectDocuments(
  text: string,
  source: string,
  config: InjectorConfig,
  runtime: InjectorRuntime,
  defaultNamespace: string,
  namespaceAnnotations?: Readonly<Record<string, string>>,
): InjectDocumentsResult {
  const documents = parseDocuments(text, source);
  const reports: TargetReport[] = [];
  documents.forEach((doc, documentIndex) => {
    for (const target of findPodTargets(doc.toJS({ maxAliasCount: 100 }))) {
      const namespace = target.namespace ?? defaultNamespace;
      const ctx = admissionContext({ namespace, workloadKind: target.kind, namespaceAnnotations });
      const result = injectPod(target.pod, ctx, config, runtime);
      reports.push({
        target: describeTarget(target, documentIndex),
        documentIndex,
        kind: target.kind,
        name: target.name,
        namespace,
        result,
      });
      if (result.pod !== undefined) {
        // Only metadata and spec change; the rest of the document (and its comments) stays.
        // Strings that kubectl's reader would take for numbers or booleans are printed quoted.
        doc.setIn([...target.path, 'metadata'], createQuotedNode(doc, result.pod['metadata']));
        doc.setIn([...target.path, 'spec'], createQuotedNode(doc, result.pod['spec']));
      }
    }
  });
  return { output: stringifyDocuments(documents), reports };
}

/** One line per pod that was not injected (and per warning), for standard error. */
export function formatInjectReports(reports: readonly TargetReport[]): string[] {
  const lines: string[] = [];
  for (const report of reports) {
    const { decision, warnings } = report.result;
    if (decision.action === 'skip') {
      lines.push(`${report.target}: skipped: ${decision.reasons.map((r) => `[${r.code}] ${r.message}`).join(' ')}`);
    } else if (decision.action === 'deny') {
      lines.push(`${report.target}: error: ${decision.reasons.map((r) => `[${r.code}] ${r.message}`).join(' ')}`);
    }
    // A surprising skip is also a warning; the skip line above already says it.
    for (const w of warnings) {
      if (decision.action !== 'skip' || !SKIP_WARNING_CODES.has(w.code)) lines.push(`${report.target}: warning: [${w.code}] ${w.message}`);
    }
  }
  return lines;
}

// Multi-document YAML for the CLI: finding the pods and pod templates in it, and writing back only
// the documents that changed (the others are printed as they were read, comments included).
import { readFileSync } from 'node:fs';
import { parseAllDocuments, type Document } from 'yaml';
import { UsageError } from '../errors.ts';

/** Where a pod (or a workload's pod template) sits in a document. */
export interface PodTarget {
  /** Path from the document root to the pod object (empty for a Pod document). */
  readonly path: readonly (string | number)[];
  /** Kind of the object holding it: Pod, Deployment, CronJob, … */
  readonly kind: string;
  readonly name: string;
  readonly namespace: string | undefined;
  readonly pod: unknown;
}

/** Kinds whose pod template is at spec.template. */
const TEMPLATE_KINDS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job', 'ReplicationController']);

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function field(value: unknown, ...path: string[]): unknown {
  let node = value;
  for (const key of path) node = isObject(node) ? node[key] : undefined;
  return node;
}

const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

/** Returns the pods and pod templates an object holds (a List holds several). */
export function findPodTargets(object: unknown, prefix: readonly (string | number)[] = []): PodTarget[] {
  const kind = str(field(object, 'kind')) ?? '';
  const name = str(field(object, 'metadata', 'name')) ?? str(field(object, 'metadata', 'generateName')) ?? '';
  const namespace = str(field(object, 'metadata', 'namespace'));
  const target = (path: string[]): PodTarget[] => {
    const pod = field(object, ...path);
    return pod === undefined ? [] : [{ path: [...prefix, ...path], kind, name, namespace, pod }];
  };
  if (kind === 'Pod') return target([]);
  if (TEMPLATE_KINDS.has(kind)) return target(['spec', 'template']);
  if (kind === 'CronJob') return target(['spec', 'jobTemplate', 'spec', 'template']);
  if (kind.endsWith('List')) {
    const items = field(object, 'items');
    return Array.isArray(items) ? items.flatMap((item, i) => findPodTargets(item, [...prefix, 'items', i])) : [];
  }
  return [];
}

/** Reads a file (or standard input for `-`) as text. */
export function readInput(file: string): string {
  try {
    return readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message;
    throw new UsageError(`cannot read ${file === '-' ? 'standard input' : file}: ${reason}`);
  }
}

/** Parses multi-document YAML (or JSON); a syntax error names the document and line. */
export function parseDocuments(text: string, source: string): Document[] {
  // YAML 1.1, as kubectl reads it (sigs.k8s.io/yaml): parsing agrees with kubectl (`yes` is a boolean),
  // and strings such as "yes", "on" or "0b11" are printed quoted so kubectl still reads strings.
  const documents = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: false, version: '1.1' });
  if (!Array.isArray(documents)) return [];
  documents.forEach((doc, index) => {
    const error = doc.errors[0];
    if (error !== undefined) {
      const line = error.linePos?.[0]?.line;
      throw new UsageError(
        `${source}: document ${index + 1} is not valid YAML${line === undefined ? '' : ` (line ${line})`}: ${error.message.split('\n')[0]}`,
      );
    }
  });
  return documents.filter((doc) => doc.contents !== null);
}

/** Describes a target for messages: `Deployment web (document 2)`. */
export function describeTarget(target: PodTarget, documentIndex: number): string {
  const name = target.name === '' ? '(unnamed)' : target.name;
  return `${target.kind || '(no kind)'} ${name} (document ${documentIndex + 1})`;
}

/** Prints documents as a YAML stream. */
export function stringifyDocuments(documents: readonly Document[]): string {
  return documents
    .map((doc) => {
      const text = doc.toString({ lineWidth: 0 });
      return text.startsWith('---') ? text.replace(/^---\n?/, '') : text;
    })
    .join('---\n');
}

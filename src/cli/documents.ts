// Multi-document YAML for the CLI: finding the pods and pod templates in it, and writing back only
// the documents that changed (the others are printed as they were read, comments included).
import { readFileSync } from 'node:fs';
import { Document, parseAllDocuments, visit, type Node } from 'yaml';
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

// Printing YAML that kubectl reads back exactly. kubectl's YAML reader resolves plain scalars
// by YAML 1.1 rules (yes/on/off are booleans, 1_000 and 0b11 numbers, 1:20 a base-60 number) and,
// since 1.32, some of 1.2's too (0o17 is a number); Go's integer parsing also takes 0X1F, 0O17 and
// 0B1. A string that either reading would take for something else is therefore printed quoted.
// Characters that YAML readers do not take raw are escaped: DEL and the C1 controls are not
// printable, NEL (U+0085) and U+2028/U+2029 are line breaks in YAML 1.1 (a raw one would split
// the string), and a byte order mark is only allowed at the start of a stream.

/** Plain scalars that are booleans or null in YAML 1.1 or 1.2 (as kubectl's reader has them), and 1.1's merge and value keys. */
const RESERVED_WORDS = /^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|null|Null|NULL|~|<<|=|)$/;
/** Strings that start like a number (sign, digit, or a dot: .5, .inf): always printed quoted. */
const NUMBER_LIKE = /^[-+]?[.\d]/;
/** Strings that are certainly plain strings in every reading: a letter first, no spaces or indicators. */
const SAFE_PLAIN = /^[A-Za-z_][A-Za-z0-9_./@-]*$/;
/** C0 control characters. */
const C0_CONTROL = /[\u0000-\u001f]/;
/** Characters that must not appear raw in YAML output (see above). */
const MUST_ESCAPE = /[\u007f-\u009f\u2028\u2029\ufeff]/;
const MUST_ESCAPE_ALL = /[\u007f-\u009f\u2028\u2029\ufeff]/g;
const NAMED_ESCAPES: Readonly<Record<string, string>> = { '\u0085': '\\N', '\u2028': '\\L', '\u2029': '\\P', '\ufeff': '\\uFEFF' };

/**
 * Whether `text` must be printed double-quoted to be read back as that string by every reader:
 * YAML 1.1 (kubectl's) and 1.2 readings take plain scalars for numbers, booleans, null or
 * timestamps exactly when they start like a number or are one of the reserved words, and some
 * characters must be escaped. What plain syntax cannot hold at all (`x: y`, `#x`, leading
 * spaces, …) the printer quotes by itself.
 */
export function mustBeQuoted(text: string): boolean {
  // C0 controls (tab and line feed included) are printed double-quoted, where the printer escapes them.
  if (MUST_ESCAPE.test(text) || C0_CONTROL.test(text)) return true;
  if (SAFE_PLAIN.test(text)) return RESERVED_WORDS.test(text);
  return NUMBER_LIKE.test(text) || RESERVED_WORDS.test(text);
}

/** Marks every string scalar under `node` that would not read back as itself to be printed double-quoted. */
function quoteAmbiguous(node: unknown): void {
  visit(node as Document, {
    Scalar(_key, scalar) {
      if (typeof scalar.value === 'string' && mustBeQuoted(scalar.value)) scalar.type = 'QUOTE_DOUBLE';
    },
  });
}

/** Returns a node for `value` in `doc`, with its ambiguous strings marked to be quoted. */
export function createQuotedNode(doc: Document, value: unknown): Node {
  const node = doc.createNode(value);
  quoteAmbiguous(node);
  return node;
}

/**
 * Escapes what the printer leaves raw (DEL, C1 controls, NEL, U+2028/9, BOM). Every scalar holding
 * one is double-quoted first (stringifyDocuments does that), where these escapes mean the
 * character; elsewhere (a comment copied from the input) they are harmless text.
 */
function escapeRaw(text: string): string {
  return text.replace(MUST_ESCAPE_ALL, (char) => NAMED_ESCAPES[char] ?? `\\x${char.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

/** Prints documents as a YAML stream that kubectl reads back exactly (see above). */
export function stringifyDocuments(documents: readonly Document[]): string {
  return documents
    .map((doc) => {
      // Only scalars that hold a character to escape change style in what was read: the rest of
      // a passed-through document prints as it was written.
      visit(doc, {
        Scalar(_key, scalar) {
          if (typeof scalar.value === 'string' && MUST_ESCAPE.test(scalar.value)) scalar.type = 'QUOTE_DOUBLE';
        },
      });
      const text = escapeRaw(doc.toString({ lineWidth: 0 }));
      return text.startsWith('---') ? text.replace(/^---\n?/, '') : text;
    })
    .join('---\n');
}

/** Prints one value as YAML that kubectl (and any YAML 1.1 or 1.2 reader) reads back exactly. */
export function stringifyQuoted(value: unknown): string {
  const doc = new Document(null);
  doc.contents = createQuotedNode(doc, value) as never;
  return stringifyDocuments([doc]);
}

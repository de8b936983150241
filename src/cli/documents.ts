// Multi-document YAML for the CLI: finding the pods and pod templates in it, and writing back only
// the documents that changed (the others are printed as they were read, comments included).
import {
  parseAllDocuments,
  visit,
  type Alias,
  Document,
  type DocumentOptions,
  type LineCounter,
  type Node,
  type ParseOptions,
  type SchemaOptions,
  type Tags,
  type ToStringOptions,
  type YAMLError,
} from 'yaml';
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

/**
 * The YAML reading kubectl has (sigs.k8s.io/yaml, on go-yaml v2): YAML 1.1 scalars (`yes` and `on`
 * are booleans, `0x1F` and `1_000` numbers), but timestamps stay strings and there are no base-60
 * numbers (`1:20`), which go-yaml never read. Duplicate keys are kept as YAML readers keep them
 * (the last wins), as kubectl's reading does before the API server's own validation.
 */
export const KUBECTL_YAML_OPTIONS = {
  version: '1.1',
  uniqueKeys: false,
  prettyErrors: true,
  customTags: (tags: Tags): Tags =>
    tags.filter((t) =>
      typeof t === 'string' ? !['timestamp', 'intTime', 'floatTime'].includes(t) : t.tag !== 'tag:yaml.org,2002:timestamp' && t.format !== 'TIME',
    ),
} as const satisfies ParseOptions & DocumentOptions & SchemaOptions;

/** What yaml's messages end with: where (which we say ourselves) and the source line (which we never repeat). */
const LOCATION_SUFFIX = / at line \d+, column \d+:[\s\S]*$/;

/** Returns one line for a parse error: the error without its source excerpt, and where it is. */
function describeYamlError(error: YAMLError, source: string, documentNumber: number): string {
  const position = error.linePos?.[0];
  const where = position === undefined ? '' : ` (line ${position.line}, column ${position.col})`;
  const message = error.message.replace(LOCATION_SUFFIX, '').split('\n')[0]?.replace(/[:\s]+$/, '') ?? '';
  return `${source}: document ${documentNumber} is not valid YAML${where}: ${message}`;
}

/**
 * Parses multi-document YAML (or JSON) as kubectl reads it, every document kept (empty ones too,
 * so the stream can be printed back whole); a syntax error is one line naming the source, the
 * document and the line.
 */
export function parseYamlStream(text: string, source: string, lineCounter?: LineCounter): Document[] {
  const documents = parseAllDocuments(text, { ...KUBECTL_YAML_OPTIONS, ...(lineCounter === undefined ? {} : { lineCounter }) });
  if (!Array.isArray(documents)) return [];
  let number = 0;
  for (const doc of documents) {
    // Documents are numbered as the objects in them: an empty one (a stray `---`) is not counted.
    if (doc.contents !== null || doc.errors.length > 0) number += 1;
    const error = doc.errors[0];
    if (error !== undefined) throw new UsageError(describeYamlError(error, source, number));
  }
  return documents;
}

/** Parses multi-document YAML (or JSON) as kubectl reads it; the empty documents are left out. */
export function parseDocuments(text: string, source: string): Document[] {
  return parseYamlStream(text, source).filter((doc) => doc.contents !== null);
}

/** Aliases a document may resolve: more is a "billion laughs" document, refused. */
const MAX_ALIASES = 100;

/**
 * Returns a document's value as kubectl reads it, or throws one line saying why it has none: an
 * alias naming no anchor of its document (anchors never carry over to the next document), or too
 * many aliases.
 */
export function documentValue(doc: Document, source: string, documentNumber: number, lineCounter?: LineCounter): unknown {
  try {
    return doc.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (error) {
    let unresolved: Alias | undefined;
    visit(doc, {
      Alias(_key, alias) {
        if (alias.resolve(doc) !== undefined) return undefined;
        unresolved = alias;
        return visit.BREAK;
      },
    });
    const offset = unresolved?.range?.[0];
    const line = offset === undefined || lineCounter === undefined ? '' : ` (line ${lineCounter.linePos(offset).line})`;
    if (unresolved !== undefined) {
      throw new UsageError(
        `${source}: document ${documentNumber}${line}: alias *${unresolved.source} names no anchor of this document (anchors do not carry over from one document to the next)`,
      );
    }
    throw new UsageError(`${source}: document ${documentNumber}: ${(error as Error).message.split('\n')[0]}`);
  }
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
export function stringifyDocuments(documents: readonly Document[], style: ToStringOptions = {}): string {
  return documents
    .map((doc) => {
      // Only scalars that hold a character to escape change style in what was read: the rest of
      // a passed-through document prints as it was written.
      visit(doc, {
        Scalar(_key, scalar) {
          if (typeof scalar.value === 'string' && MUST_ESCAPE.test(scalar.value)) scalar.type = 'QUOTE_DOUBLE';
        },
      });
      const text = escapeRaw(doc.toString({ lineWidth: 0, ...style }));
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

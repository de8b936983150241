// The manifests a command reads, as kubectl reads them, and the stream it prints back (SPEC.md §9).
//
// A source is JSON when it starts with `{` and is a valid stream of JSON values (kubectl's
// GuessJSONStream); otherwise YAML, one or more documents. A command changes a document only
// through a JSON Patch (the one the webhook would return, or uninject's), applied to the document
// itself: YAML through the yaml Document API, so that comments and the formatting of every other
// node stay; JSON to the parsed value, printed back with the indentation it had. A document that
// is not changed is printed as the very bytes it was read from.
//
// Output format: `-o json` or `-o yaml` where given; otherwise JSON when every source is JSON, and
// YAML when any is YAML (YAML reads JSON too, and kubectl reads a YAML stream of any documents).
// Several JSON documents are printed one after the other (a JSON stream, as `kubectl get -o json`
// of several objects gives, which kubectl and jq read); YAML documents are separated by `---`.
import jsonpatch, { type Operation } from 'fast-json-patch';
import { Document, isCollection, isMap, isScalar, isSeq, LineCounter, type Node, type ParsedNode, type ToStringOptions, type YAMLMap, type YAMLSeq } from 'yaml';
import { UsageError } from '../errors.ts';
import { createQuotedNode, documentValue, findPodTargets, parseYamlStream, stringifyDocuments, type PodTarget } from './documents.ts';
import type { Source } from './input.ts';
import { jsonIndentation, splitJsonStream } from './json-stream.ts';

export type ManifestFormat = 'json' | 'yaml';

/** One document (one object) of a source. */
export interface Manifest {
  /** The source's name: a path, or `-`. */
  readonly source: string;
  /** 1-based position among its source's documents (empty YAML documents are not counted). */
  readonly number: number;
  readonly format: ManifestFormat;
  /** The object as kubectl reads it (aliases resolved); as read, before any patch. */
  readonly object: unknown;
}

interface YamlEntry {
  readonly kind: 'yaml';
  readonly manifest: Manifest | undefined;
  doc: Document.Parsed | Document;
  /** The source text this document (with what leads it, comments and `---`) was read from. */
  readonly text: string;
  changed: boolean;
}

interface JsonEntry {
  readonly kind: 'json';
  /** Undefined for a `null` value, which kubectl skips. */
  readonly manifest: Manifest | undefined;
  value: unknown;
  readonly text: string;
  readonly indent: string | undefined;
  changed: boolean;
}

type Entry = YamlEntry | JsonEntry;

/** A parsed source: its documents, and what it takes to print it back. */
export interface ManifestSource {
  readonly name: string;
  readonly format: ManifestFormat;
  readonly manifests: readonly Manifest[];
  readonly entries: readonly Entry[];
  /** Text after the last document (YAML: nothing, or what no document holds). */
  readonly tail: string;
}

const displayName = (name: string) => (name === '-' ? 'standard input' : name);

function lineAndColumn(text: string, offset: number): { line: number; col: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return { line, col: offset - before.lastIndexOf('\n') };
}

/** Parses a source that looks like JSON, or returns the line saying where it is not. */
function parseJson(source: Source): ManifestSource | { error: string } {
  const split = splitJsonStream(source.text);
  if (!split.ok) {
    const { line, col } = lineAndColumn(source.text, split.error.offset);
    return { error: `${displayName(source.name)}: document ${split.error.value + 1} is not valid JSON (line ${line}, column ${col}): ${split.error.message}` };
  }
  const entries: JsonEntry[] = split.spans.map((span, index) => {
    const text = source.text.slice(span.start, span.end);
    const value: unknown = JSON.parse(text);
    return {
      kind: 'json',
      manifest: value === null ? undefined : { source: source.name, number: index + 1, format: 'json', object: structuredClone(value) },
      value,
      text,
      indent: jsonIndentation(text),
      changed: false,
    };
  });
  return { name: source.name, format: 'json', manifests: entries.flatMap((e) => (e.manifest === undefined ? [] : [e.manifest])), entries, tail: '' };
}

function parseYaml(source: Source): ManifestSource {
  const lineCounter = new LineCounter();
  const name = displayName(source.name);
  const docs = parseYamlStream(source.text, name, lineCounter);
  const entries: YamlEntry[] = [];
  let number = 0;
  let offset = 0;
  for (const doc of docs) {
    // A document's range starts at its content or `---`; what leads it (comments, a `...` before
    // it) is its own too: the yaml Document holds those comments, and prints them with it.
    const end = doc.range?.[2] ?? source.text.length;
    const text = source.text.slice(offset, end);
    offset = end;
    let manifest: Manifest | undefined;
    if (doc.contents !== null) {
      number += 1;
      const object = documentValue(doc, name, number, lineCounter);
      // A null document (`---` with nothing after it, or `~`) is no object: kubectl skips it too.
      if (object !== null) manifest = { source: source.name, number, format: 'yaml', object };
    }
    entries.push({ kind: 'yaml', manifest, doc, text, changed: false });
  }
  return {
    name: source.name,
    format: 'yaml',
    manifests: entries.flatMap((e) => (e.manifest === undefined ? [] : [e.manifest])),
    entries,
    tail: source.text.slice(offset),
  };
}

/** Parses one source (JSON or YAML, see above), or throws one line naming where it is broken. */
export function parseSource(source: Source): ManifestSource {
  if (/^\uFEFF?[ \t\r\n]*\{/.test(source.text)) {
    const json = parseJson({ ...source, text: source.text.replace(/^\uFEFF/, '') });
    if (!('error' in json)) return json;
    // `{a: 1}` is YAML (a flow mapping), which kubectl would not read but a YAML reader does; a
    // .json file, or one whose first key is quoted, is JSON with a mistake in it.
    if (source.name.endsWith('.json') || /^\uFEFF?\s*\{\s*"/.test(source.text)) throw new UsageError(json.error);
    return parseYaml(source);
  }
  return parseYaml(source);
}

/** Describes where a manifest is, for messages: `document 2`, or `deploy.yaml document 2` among several sources. */
export function whereIs(manifest: Manifest, severalSources: boolean): string {
  return severalSources ? `${displayName(manifest.source)} document ${manifest.number}` : `document ${manifest.number}`;
}

/** Describes a pod target of a manifest: `Deployment web (document 2)`. */
export function describeManifestTarget(target: PodTarget, manifest: Manifest, severalSources: boolean): string {
  const name = target.name === '' ? '(unnamed)' : target.name;
  return `${target.kind || '(no kind)'} ${name} (${whereIs(manifest, severalSources)})`;
}

/** The pods and pod templates of a manifest. */
export function manifestTargets(manifest: Manifest): PodTarget[] {
  return findPodTargets(manifest.object);
}

function entryOf(source: ManifestSource, manifest: Manifest): Entry {
  const entry = source.entries.find((e) => e.manifest === manifest);
  if (entry === undefined) throw new Error('the manifest is not one of this source');
  return entry;
}

const pointer = (path: readonly (string | number)[]) => path.map((p) => `/${String(p).replaceAll('~', '~0').replaceAll('/', '~1')}`).join('');
const unpointer = (text: string): string[] => text.split('/').slice(1).map((t) => t.replaceAll('~1', '/').replaceAll('~0', '~'));

/** Returns the operations with their paths under `base` (the pod's place in the document). */
function rebase(ops: readonly Operation[], base: readonly (string | number)[]): Operation[] {
  const prefix = pointer(base);
  return ops.map((op) => ({ ...op, path: prefix + op.path, ...('from' in op ? { from: prefix + op.from } : {}) }) as Operation);
}

class Unpatchable extends Error {}

/** The item of a YAML mapping whose key reads as `key` (keys are read as kubectl reads them). */
function itemIndex(map: YAMLMap, key: string): number {
  return map.items.findIndex((item) => {
    const k = item.key;
    const text = isScalar(k) ? k.value : k;
    return text !== null && typeof text !== 'object' && String(text) === key;
  });
}

/**
 * Returns the collection at `path` in `doc`, turned to block style together with every collection
 * above it (a block node inside a flow collection cannot be printed as block), or throws
 * Unpatchable where the path goes through an alias, a merged key or anything but collections.
 */
function collectionAt(doc: Document, path: readonly string[]): YAMLMap | YAMLSeq {
  let node: unknown = doc.contents;
  const visited: (YAMLMap | YAMLSeq)[] = [];
  for (const key of path) {
    if (isMap(node)) {
      visited.push(node);
      const index = itemIndex(node, key);
      if (index < 0) throw new Unpatchable(`no key ${key}`);
      node = node.items[index]?.value;
    } else if (isSeq(node)) {
      visited.push(node);
      node = node.items[Number(key)];
    } else throw new Unpatchable(`no collection at ${key}`);
  }
  if (!isMap(node) && !isSeq(node)) throw new Unpatchable('not a collection');
  for (const collection of [...visited, node]) collection.flow = false;
  return node;
}

function seqIndex(seq: YAMLSeq, key: string, forAdd: boolean): number {
  if (forAdd && key === '-') return seq.items.length;
  const index = Number(key);
  if (!Number.isInteger(index) || index < 0 || index > seq.items.length - (forAdd ? 0 : 1)) throw new Unpatchable(`bad index ${key}`);
  return index;
}

/** Takes the node at `path` out of the document, returning it. */
function removeNode(doc: Document, path: readonly string[]): unknown {
  const parent = collectionAt(doc, path.slice(0, -1));
  const key = path[path.length - 1] as string;
  if (isSeq(parent)) return parent.items.splice(seqIndex(parent, key, false), 1)[0];
  const index = itemIndex(parent, key);
  if (index < 0) throw new Unpatchable(`no key ${key}`);
  return parent.items.splice(index, 1)[0]?.value;
}

/** Puts `node` at `path` (JSON Patch `add`: inserted into a list, set in a mapping). */
function addNode(doc: Document, path: readonly string[], node: unknown): void {
  const parent = collectionAt(doc, path.slice(0, -1));
  const key = path[path.length - 1] as string;
  if (isSeq(parent)) {
    parent.items.splice(seqIndex(parent, key, true), 0, node);
    return;
  }
  const index = itemIndex(parent, key);
  if (index >= 0) (parent.items[index] as { value: unknown }).value = node;
  else parent.items.push(doc.createPair(key, node) as never);
}

/** Applies JSON Patch operations to a YAML document's nodes. */
function patchYamlNodes(doc: Document, ops: readonly Operation[], createNode: (doc: Document, value: unknown) => Node): void {
  for (const op of ops) {
    const path = unpointer(op.path);
    if (op.op === 'add') addNode(doc, path, createNode(doc, op.value));
    else if (op.op === 'remove') removeNode(doc, path);
    else if (op.op === 'replace') {
      removeNode(doc, path);
      addNode(doc, path, createNode(doc, op.value));
    } else if (op.op === 'move') addNode(doc, path, removeNode(doc, unpointer(op.from)));
    else throw new Unpatchable(`operation ${op.op}`);
  }
}

/** Makes a block-style node for a value a patch adds. */
export type NodeMaker = (doc: Document, value: unknown) => Node;
/** Strings kubectl's reader would take for something else are marked to be quoted (documents.ts). */
const plainNode: NodeMaker = createQuotedNode;

/**
 * Applies `ops` (paths relative to `base`, the pod's place in the manifest) to the manifest's
 * document. YAML is patched node by node; where that cannot be done faithfully (the pod reached
 * through an alias, a key that comes from a merge `<<`) or a flow-style document (JSON in a YAML
 * stream), the document is printed anew from its patched value, in block style.
 */
export function patchManifest(
  source: ManifestSource,
  manifest: Manifest,
  base: readonly (string | number)[],
  ops: readonly Operation[],
  createNode: NodeMaker = plainNode,
): void {
  if (ops.length === 0) return;
  const entry = entryOf(source, manifest);
  const rebased = rebase(ops, base);
  entry.changed = true;
  if (entry.kind === 'json') {
    entry.value = jsonpatch.applyPatch(entry.value, rebased, true, true).newDocument;
    return;
  }
  const expected = jsonpatch.applyPatch(entry.doc.toJS({ maxAliasCount: 100 }), rebased, true, false).newDocument as unknown;
  const flowRoot = isCollection(entry.doc.contents) && entry.doc.contents.flow === true;
  if (!flowRoot) {
    const attempt = entry.doc.clone();
    try {
      patchYamlNodes(attempt, rebased, createNode);
      // The nodes were patched; their value must be what the patch gives (a merge key or an
      // alias elsewhere in the document could make them differ).
      if (jsonpatch._areEquals(attempt.toJS({ maxAliasCount: 100 }), expected)) {
        entry.doc = attempt;
        return;
      }
    } catch (error) {
      if (!(error instanceof Unpatchable)) throw error;
    }
  }
  const rebuilt = new Document(null, { version: '1.1' });
  rebuilt.commentBefore = entry.doc.commentBefore;
  rebuilt.contents = createNode(rebuilt, expected) as ParsedNode;
  entry.doc = rebuilt;
}

/** Whether YAML text starts a document with `---` (after comments and blank lines, if any). */
function startsWithMarker(text: string): boolean {
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    return line === '---' || line.startsWith('--- ');
  }
  return false;
}

/**
 * How a YAML text writes what a changed document is printed with, so that its other nodes look as
 * they did: sequences indented under their key or not (`key:\n- a` or `key:\n  - a`), and flow
 * collections padded or not (`{ a: b }` or `{a: b}`); by majority, yaml's defaults when undecided.
 */
export function detectStyle(text: string): ToStringOptions {
  const lines = text.split('\n');
  let indented = 0;
  let flush = 0;
  for (const [i, line] of lines.entries()) {
    const key = /^( *)[^\s#-][^#]*:$/.exec(line);
    const next = key === null ? null : /^( *)- /.exec(lines[i + 1] ?? '');
    if (key === null || next === null) continue;
    if ((next[1] as string).length > (key[1] as string).length) indented += 1;
    else if (next[1] === key[1]) flush += 1;
  }
  const padded = (text.match(/[{[] [^\s]/g) ?? []).length;
  const tight = (text.match(/(?:^|[\s:,])[{[][^\s}\]'"]/gm) ?? []).length;
  return { indentSeq: flush <= indented, flowCollectionPadding: tight <= padded };
}

/** The printed form of one YAML entry: its source text unless it changed. */
function yamlText(entry: YamlEntry, first: boolean): string {
  if (!entry.changed) return entry.text;
  // Every document but a stream's first needs its `---`, which stringifyDocuments leaves out when
  // it comes first (rather than after the comments that lead the document).
  if (!first && entry.doc.directives !== undefined) entry.doc.directives.docStart = true;
  const text = stringifyDocuments([entry.doc], detectStyle(entry.text));
  return first || startsWithMarker(text) ? text : `---\n${text}`;
}

function jsonText(entry: JsonEntry): string {
  return entry.changed ? JSON.stringify(entry.value, null, entry.indent) : entry.text;
}

/** Returns the documents' values in `format`: every document as read, or as patched. */
function converted(entry: Entry, format: ManifestFormat): string | undefined {
  if (entry.manifest === undefined) return undefined;
  const value = entry.kind === 'json' ? entry.value : entry.doc.toJS({ maxAliasCount: 100 });
  if (format === 'json') return JSON.stringify(value, null, 2);
  const doc = new Document(null, { version: '1.1' });
  doc.contents = plainNode(doc, value) as ParsedNode;
  return stringifyDocuments([doc]);
}

/** Returns the format a command prints its sources in: `requested`, else JSON only when every source is JSON. */
export function outputFormatOf(sources: readonly ManifestSource[], requested: ManifestFormat | undefined): ManifestFormat {
  return requested ?? (sources.length > 0 && sources.every((s) => s.format === 'json') ? 'json' : 'yaml');
}

/** Prints the sources as one stream in `format` (see the header). */
export function printSources(sources: readonly ManifestSource[], format: ManifestFormat): string {
  if (format === 'json') {
    const values = sources.flatMap((source) =>
      source.entries.flatMap((entry) => {
        const text = entry.kind === 'json' ? jsonText(entry) : converted(entry, 'json');
        return text === undefined ? [] : [text];
      }),
    );
    return values.map((v) => `${v}\n`).join('');
  }
  const texts: string[] = [];
  for (const source of sources) {
    if (source.format === 'yaml') {
      // An unchanged document's text ends where the next one's starts (a stray `---` may end
      // without its newline, which then leads the next text): a changed one's replacement must
      // not run into it.
      let text = '';
      source.entries.forEach((entry, index) => {
        if (entry.kind !== 'yaml') return;
        const next = yamlText(entry, index === 0);
        text += text !== '' && !text.endsWith('\n') && !next.startsWith('\n') ? `\n${next}` : next;
      });
      text += source.tail;
      if (text !== '' && !text.endsWith('\n')) text += '\n';
      if (text !== '') texts.push(text);
    } else {
      for (const entry of source.entries) {
        const text = converted(entry, 'yaml');
        if (text !== undefined) texts.push(text);
      }
    }
  }
  // Sources follow each other as documents: each after the first starts with `---` (one it has,
  // or one added).
  return texts.map((text, index) => (index === 0 || startsWithMarker(text) ? text : `---\n${text}`)).join('');
}

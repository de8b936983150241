// Reading a manifest stream by kubectl's rules, strictly, to check what the CLI prints. kubectl
// (k8s.io/apimachinery's YAMLOrJSONDecoder) takes a stream that starts with `{` as a JSON stream
// and anything else as YAML documents, each converted to JSON by sigs.k8s.io/yaml on go-yaml v2:
// YAML 1.1 scalars (yes/on/off are booleans, 0x1F and 1_000 numbers; timestamps stay strings, and
// there are no base-60 numbers) and then strict JSON: a duplicate key is an error, and so is a value
// JSON cannot hold (NaN, infinities). Written independently of src/cli, which it checks.
import { parseAllDocuments, parseDocument, type Tags } from 'yaml';

/** Fails on what JSON cannot carry, as json.Marshal does (NaN, ±Inf), and on non-JSON values. */
function assertJsonValue(value: unknown, path: string): void {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`${path}: ${value} is no JSON number`);
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((item, i) => assertJsonValue(item, `${path}[${i}]`));
    return;
  }
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    for (const [key, child] of Object.entries(value)) assertJsonValue(child, `${path}.${key}`);
    return;
  }
  throw new Error(`${path}: ${Object.prototype.toString.call(value)} is no JSON value`);
}

/** Parses one JSON text strictly: its syntax (JSON.parse), and no duplicate member names. */
function parseStrictJson(text: string, where: string): unknown {
  const value: unknown = JSON.parse(text);
  const doc = parseDocument(text, { schema: 'json', uniqueKeys: true });
  if (doc.errors.length > 0) throw new Error(`${where}: ${doc.errors[0]?.message.split('\n')[0]}`);
  return value;
}

/** Splits a JSON stream into its top-level values (counting brackets outside strings). */
function splitJson(text: string): string[] {
  const values: string[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{' || c === '[') {
      if (depth === 0) start = i;
      depth++;
    } else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0) values.push(text.slice(start, i + 1));
    } else if (depth === 0 && !/\s/.test(c as string)) throw new Error(`JSON stream: unexpected ${JSON.stringify(c)} at ${i}`);
  }
  if (depth !== 0 || inString) throw new Error('JSON stream: unterminated value');
  return values;
}

const kubectlTags = (tags: Tags): Tags =>
  tags.filter((t) => (typeof t === 'string' ? !['timestamp', 'intTime', 'floatTime'].includes(t) : t.tag !== 'tag:yaml.org,2002:timestamp' && t.format !== 'TIME'));

/** Whether kubectl would read `text` as a JSON stream. */
export function isJsonStream(text: string): boolean {
  return /^\s*\{/.test(text);
}

/** Returns the objects of a stream as kubectl reads them, or throws where it would refuse it. */
export function readAsKubectl(text: string): unknown[] {
  if (isJsonStream(text)) return splitJson(text).map((value, i) => parseStrictJson(value, `JSON value ${i + 1}`)).filter((v) => v !== null);
  const objects: unknown[] = [];
  parseAllDocuments(text, { version: '1.1', uniqueKeys: true, customTags: kubectlTags }).forEach((doc, i) => {
    const error = doc.errors[0];
    if (error !== undefined) throw new Error(`YAML document ${i + 1}: ${error.message.split('\n')[0]}`);
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    // kubectl skips a document that is null (an empty one after `---`, or `~`).
    if (value === null) return;
    assertJsonValue(value, `document ${i + 1}`);
    objects.push(parseStrictJson(JSON.stringify(value), `document ${i + 1}`));
  });
  return objects;
}

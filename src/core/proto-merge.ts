// Protobuf's MergeFrom on ProtoJSON values, driven by a compact schema of Envoy's v3 API
// (core/envoy-schema.ts, generated from the protos by envoy/merge-schema.ts). It is what Envoy does
// with `-c BASE --config-yaml TOP` (SPEC.md §4a), which envoy-init reproduces to write one bootstrap:
// - a singular scalar of the top layer wins — for proto3 implicit-presence scalars and enums only
//   when it is not the default (0, "", false, the zero enum value);
// - a singular message merges recursively; a repeated field appends (top after base);
// - a map entry of the top layer replaces the base's entry of the same key (values are not merged);
// - a google.protobuf.Any is replaced whole;
// - a oneof member set in the top layer clears the base's other member;
// - well-known types follow from their definitions: Struct is map<string, Value> (top's keys replace),
//   Value is a oneof (two structs merge as Structs, two lists append, anything else is replaced),
//   ListValue appends, wrappers merge their one implicit `value`, Duration its seconds and nanos.
// Before merging, each layer is read against the schema (normalize): unknown fields, a list where a
// message belongs and the like are reported with their path; field names become the proto's (Envoy
// reads either). The merge reports every place where the top layer replaced or cleared what the base
// set, so a caller can refuse a fragment whose settings the generated bootstrap would silently drop.
// Pure.
import { ENVOY_SCHEMA_JSON } from './envoy-schema.ts';
import { closest } from './suggest.ts';
import type { Json, JsonObject } from './types.ts';

/** One field of a message: proto name, JSON name, kind (scalar, enum, message), type, repeated/map, oneof, presence. */
export interface SchemaField {
  n: string;
  j: string;
  k: 's' | 'e' | 'm';
  /** The message or enum type, or the scalar type (`uint32`, `string`, …); for a map, its value's. */
  t?: string;
  r?: 1;
  map?: 1;
  /** The oneof it is a member of (proto3 `optional` is not one: it only gives presence). */
  o?: string;
  /** Explicit presence (a oneof member or proto3 `optional`): set counts even at the default. */
  p?: 1;
}

/** The schema: every message reachable from `root`, and the zero value's name of every enum. */
export interface MergeSchema {
  readonly root: string;
  readonly messages: Readonly<Record<string, readonly SchemaField[]>>;
  readonly enums: Readonly<Record<string, string>>;
}

/** A problem with a layer, at a JSON path such as `static_resources.listeners[0].name`. */
export interface LayerProblem {
  readonly path: string;
  readonly message: string;
}

/** A place where the top layer replaced (or, in a oneof, cleared) what the base layer set. */
export interface Overwrite {
  readonly path: string;
  readonly base: Json;
  /** The top layer's value; undefined when a oneof member of the top cleared this one. */
  readonly top?: Json;
  /** The top layer's member that cleared this one. */
  readonly clearedBy?: string;
}

let envoySchema: MergeSchema | undefined;

/** Returns Envoy's Bootstrap schema, parsed on first use. */
export function bootstrapSchema(): MergeSchema {
  envoySchema ??= JSON.parse(ENVOY_SCHEMA_JSON) as MergeSchema;
  return envoySchema;
}

interface MessageIndex {
  readonly fields: readonly SchemaField[];
  readonly byName: ReadonlyMap<string, SchemaField>;
}

const indexes = new WeakMap<MergeSchema, Map<string, MessageIndex>>();

function messageIndex(schema: MergeSchema, type: string): MessageIndex {
  let perSchema = indexes.get(schema);
  if (perSchema === undefined) indexes.set(schema, (perSchema = new Map()));
  let index = perSchema.get(type);
  if (index === undefined) {
    const fields = schema.messages[type];
    if (fields === undefined) throw new Error(`no message ${type} in the schema`);
    const byName = new Map<string, SchemaField>();
    for (const f of fields) {
      byName.set(f.n, f);
      byName.set(f.j, f);
    }
    index = { fields, byName };
    perSchema.set(type, index);
  }
  return index;
}

const WRAPPERS = new Set(
  ['Double', 'Float', 'Int64', 'UInt64', 'Int32', 'UInt32', 'Bool', 'String', 'Bytes'].map((t) => `google.protobuf.${t}Value`),
);
const ANY = 'google.protobuf.Any';
const STRUCT = 'google.protobuf.Struct';
const VALUE = 'google.protobuf.Value';
const LIST_VALUE = 'google.protobuf.ListValue';
const DURATION = 'google.protobuf.Duration';
const TIMESTAMP = 'google.protobuf.Timestamp';
const FIELD_MASK = 'google.protobuf.FieldMask';
const NUMERIC = new Set(['double', 'float', 'int32', 'int64', 'uint32', 'uint64', 'sint32', 'sint64', 'fixed32', 'fixed64', 'sfixed32', 'sfixed64']);

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);
const at = (path: string, key: string): string => (path === '' ? key : `${path}.${key}`);
const show = (v: unknown): string => {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
};
const same = (a: Json, b: Json): boolean => JSON.stringify(a) === JSON.stringify(b);

/** What a scalar of protobuf type `type` may be in ProtoJSON. */
function scalarFits(type: string, value: Json): boolean {
  if (type === 'bool') return typeof value === 'boolean';
  if (type === 'string' || type === 'bytes') return typeof value === 'string';
  if (NUMERIC.has(type)) return typeof value === 'number' || typeof value === 'string';
  return true;
}

class Reader {
  readonly problems: LayerProblem[] = [];
  constructor(readonly schema: MergeSchema) {}

  fail(path: string, message: string): undefined {
    this.problems.push({ path, message });
    return undefined;
  }

  /** A value of `field` (one item of it for a list or map), normalized; undefined when it is bad. */
  item(field: SchemaField, value: Json, path: string): Json | undefined {
    if (field.k === 'm') return this.message(field.t as string, value, path);
    if (field.k === 'e') {
      return typeof value === 'string' || typeof value === 'number' ? value : this.fail(path, `expected an enum value of ${field.t}, got ${show(value)}`);
    }
    return scalarFits(field.t ?? '', value) ? value : this.fail(path, `expected ${field.t}, got ${show(value)}`);
  }

  message(type: string, value: Json, path: string): Json | undefined {
    switch (type) {
      case ANY:
        if (!isObject(value)) return this.fail(path, `expected an object (${ANY}), got ${show(value)}`);
        if (typeof value['@type'] !== 'string') return this.fail(path, `${ANY} without @type: Envoy cannot tell what it holds`);
        return value;
      case STRUCT:
        return isObject(value) ? value : this.fail(path, `expected an object (${STRUCT}), got ${show(value)}`);
      case VALUE:
        return value;
      case LIST_VALUE:
        return Array.isArray(value) ? value : this.fail(path, `expected a list (${LIST_VALUE}), got ${show(value)}`);
      case DURATION:
        return typeof value === 'string' && parseDuration(value) !== undefined
          ? value
          : this.fail(path, `expected a duration such as "1.5s", got ${show(value)}`);
      case TIMESTAMP:
      case FIELD_MASK:
        return typeof value === 'string' ? value : this.fail(path, `expected a string (${type}), got ${show(value)}`);
    }
    if (WRAPPERS.has(type)) {
      const inner = messageIndex(this.schema, type).byName.get('value') as SchemaField;
      return value !== null && !isObject(value) && !Array.isArray(value) && scalarFits(inner.t ?? '', value)
        ? value
        : this.fail(path, `expected ${inner.t} (${type}), got ${show(value)}`);
    }
    if (!isObject(value)) return this.fail(path, `expected an object (${type}), got ${show(value)}`);
    const { fields, byName } = messageIndex(this.schema, type);
    const out: JsonObject = {};
    const oneofs = new Map<string, string>();
    for (const [key, item] of Object.entries(value)) {
      const field = byName.get(key);
      const fieldPath = at(path, key);
      if (field === undefined) {
        const hint = closest(key, fields.map((f) => f.n));
        this.fail(fieldPath, `unknown field ${JSON.stringify(key)} in ${type}${hint === undefined ? '' : ` (did you mean ${JSON.stringify(hint)}?)`}`);
        continue;
      }
      if (Object.hasOwn(out, field.n)) {
        this.fail(fieldPath, `${field.n} is given twice (as ${field.n} and ${field.j})`);
        continue;
      }
      // ProtoJSON reads null as "not set".
      if (item === null) continue;
      if (field.o !== undefined) {
        const other = oneofs.get(field.o);
        if (other !== undefined) this.fail(fieldPath, `${other} and ${field.n} are both set, but only one of oneof ${field.o} may be`);
        oneofs.set(field.o, field.n);
      }
      const read = this.field(field, item, fieldPath);
      if (read !== undefined) out[field.n] = read;
    }
    return out;
  }

  field(field: SchemaField, value: Json, path: string): Json | undefined {
    if (field.map === 1) {
      if (!isObject(value)) return this.fail(path, `expected an object for map ${field.n}, got ${show(value)}`);
      const out: JsonObject = {};
      for (const [k, v] of Object.entries(value)) {
        const read = this.item(field, v, `${path}[${JSON.stringify(k)}]`);
        if (read !== undefined) out[k] = read;
      }
      return out;
    }
    if (field.r === 1) {
      if (!Array.isArray(value)) return this.fail(path, `expected a list for ${field.n}, got ${show(value)}`);
      const out: Json[] = [];
      value.forEach((v, i) => {
        const read = this.item(field, v, `${path}[${i}]`);
        if (read !== undefined) out.push(read);
      });
      return out;
    }
    return this.item(field, value, path);
  }
}

/**
 * Reads `value` as the message `type` (default: the schema's root): the same value with the proto's
 * field names and without nulls, or the problems found (each with its path).
 */
export function normalizeLayer(
  value: unknown,
  schema: MergeSchema = bootstrapSchema(),
  type: string = schema.root,
): { readonly ok: true; readonly value: JsonObject } | { readonly ok: false; readonly problems: readonly LayerProblem[] } {
  const reader = new Reader(schema);
  const read = reader.message(type, value as Json, '');
  if (reader.problems.length > 0 || !isObject(read)) return { ok: false, problems: reader.problems };
  return { ok: true, value: read };
}

/** Seconds and nanoseconds of a ProtoJSON duration ("1.5s", "-0.25s"), or undefined. */
function parseDuration(text: string): { seconds: bigint; nanos: number } | undefined {
  const m = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/.exec(text);
  if (m === null) return undefined;
  const sign = m[1] === undefined ? 1 : -1;
  return { seconds: BigInt(m[2] as string) * BigInt(sign), nanos: Number((m[3] ?? '').padEnd(9, '0')) * sign };
}

/** ProtoJSON's form of a duration: 0, 3, 6 or 9 fractional digits. */
function formatDuration(seconds: bigint, nanos: number): string {
  const negative = seconds < 0n || nanos < 0;
  const s = seconds < 0n ? -seconds : seconds;
  const n = Math.abs(nanos);
  let fraction = '';
  if (n !== 0) {
    const digits = String(n).padStart(9, '0');
    fraction = `.${digits.endsWith('000000') ? digits.slice(0, 3) : digits.endsWith('000') ? digits.slice(0, 6) : digits}`;
  }
  return `${negative ? '-' : ''}${s}${fraction}s`;
}

/** Whether a proto3 implicit-presence scalar or enum is at its default (so MergeFrom does not copy it). */
function isDefault(field: SchemaField, value: Json, schema: MergeSchema): boolean {
  if (field.k === 'e') return value === 0 || value === schema.enums[field.t as string];
  const type = field.t ?? '';
  if (type === 'bool') return value === false;
  if (type === 'string' || type === 'bytes') return value === '';
  if (NUMERIC.has(type)) return Number(value) === 0 && !Number.isNaN(Number(value));
  return false;
}

class Merger {
  readonly overwrites: Overwrite[] = [];
  constructor(readonly schema: MergeSchema) {}

  replaced(path: string, base: Json, top: Json): Json {
    if (!same(base, top)) this.overwrites.push({ path, base, top });
    return top;
  }

  /** Merges two values of `field` (neither undefined): the field's own rule. */
  field(field: SchemaField, base: Json, top: Json, path: string): Json {
    if (field.map === 1) {
      const out: JsonObject = { ...(base as JsonObject) };
      for (const [k, v] of Object.entries(top as JsonObject)) {
        out[k] = Object.hasOwn(out, k) ? this.replaced(`${path}[${JSON.stringify(k)}]`, out[k] as Json, v) : v;
      }
      return out;
    }
    if (field.r === 1) return [...(base as Json[]), ...(top as Json[])];
    if (field.k === 'm') return this.message(field.t as string, base, top, path);
    // A member of a oneof or a proto3 `optional` has presence: set is set, whatever its value.
    if (field.p === 1 || !isDefault(field, top, this.schema)) return this.replaced(path, base, top);
    return base;
  }

  message(type: string, base: Json, top: Json, path: string): Json {
    switch (type) {
      case ANY:
        return this.replaced(path, base, top);
      case STRUCT:
        return this.struct(base as JsonObject, top as JsonObject, path);
      case VALUE:
        return this.value(base, top, path);
      case LIST_VALUE:
        return [...(base as Json[]), ...(top as Json[])];
      case DURATION: {
        const b = parseDuration(base as string) as { seconds: bigint; nanos: number };
        const t = parseDuration(top as string) as { seconds: bigint; nanos: number };
        // Two implicit-presence fields: each of the top's wins only when it is not zero.
        const merged = formatDuration(t.seconds !== 0n ? t.seconds : b.seconds, t.nanos !== 0 ? t.nanos : b.nanos);
        return this.replaced(path, base, merged);
      }
      case TIMESTAMP:
        return this.replaced(path, base, top);
      case FIELD_MASK: {
        const paths = [base, top].filter((p) => p !== '');
        return paths.join(',');
      }
    }
    if (WRAPPERS.has(type)) {
      const inner = messageIndex(this.schema, type).byName.get('value') as SchemaField;
      return isDefault(inner, top, this.schema) ? base : this.replaced(path, base, top);
    }
    const b = base as JsonObject;
    const t = top as JsonObject;
    const { fields } = messageIndex(this.schema, type);
    // The oneof members the top sets: the base's other members of those oneofs are cleared.
    const topOneofs = new Map<string, string>();
    for (const f of fields) if (f.o !== undefined && Object.hasOwn(t, f.n)) topOneofs.set(f.o, f.n);
    const out: JsonObject = {};
    // In schema order: the output does not depend on the order either layer wrote its fields in.
    for (const f of fields) {
      const inBase = Object.hasOwn(b, f.n);
      const inTop = Object.hasOwn(t, f.n);
      if (inBase && f.o !== undefined && !inTop && topOneofs.has(f.o)) {
        this.overwrites.push({ path: at(path, f.n), base: b[f.n] as Json, clearedBy: topOneofs.get(f.o) as string });
        continue;
      }
      if (inBase && inTop) out[f.n] = this.field(f, b[f.n] as Json, t[f.n] as Json, at(path, f.n));
      else if (inBase) out[f.n] = b[f.n] as Json;
      else if (inTop) out[f.n] = t[f.n] as Json;
    }
    return out;
  }

  /** Struct is map<string, Value>: the top's entries replace the base's of the same key. */
  struct(base: JsonObject, top: JsonObject, path: string): JsonObject {
    const out: JsonObject = { ...base };
    for (const [k, v] of Object.entries(top)) out[k] = Object.hasOwn(out, k) ? this.replaced(`${path}[${JSON.stringify(k)}]`, out[k] as Json, v) : v;
    return out;
  }

  /** Value is oneof kind: the same message member merges (Struct, ListValue), anything else is replaced. */
  value(base: Json, top: Json, path: string): Json {
    if (isObject(base) && isObject(top)) return this.struct(base, top, path);
    if (Array.isArray(base) && Array.isArray(top)) return [...base, ...top];
    return this.replaced(path, base, top);
  }
}

/**
 * Returns MergeFrom(base, top) of two normalized layers of the message `type` (default: the
 * schema's root), and where the top replaced or cleared what the base set.
 */
export function mergeLayers(
  base: JsonObject,
  top: JsonObject,
  schema: MergeSchema = bootstrapSchema(),
  type: string = schema.root,
): { readonly merged: JsonObject; readonly overwrites: readonly Overwrite[] } {
  const merger = new Merger(schema);
  const merged = merger.message(type, base, top, '') as JsonObject;
  return { merged, overwrites: merger.overwrites };
}

// Strict validation of Envoy configuration against Envoy's own v3 API protos: the one validator of
// the tests, `bootstrap -f`, `check` and the config check of `proxy.bootstrapOverride`. Loading the
// v3 API costs about 2 s and 120 MB, so only those commands import this module (never the webhook's
// hot path, never envoy-init: see envoy/merge-schema.ts for what envoy-init uses instead).
//
// The protos are the ones shipped in @grpc/grpc-js-xds (deps/: envoy-api, xds, googleapis,
// protoc-gen-validate), loaded once per process with protobufjs 8. Every value is checked the way
// Envoy's own JSON loader and its protoc-gen-validate (PGV) rules check a bootstrap: the strict
// ProtoJSON parser of `protobufjs/ext/protojson` judges every field (unknown fields, wrong types,
// unknown enum values, bad durations), a walk alongside it gives each problem its path, follows
// every `google.protobuf.Any` into the message its `@type` names, rejects an Any without `@type`,
// fields Envoy deprecated, and the PGV rules declared on the fields that apply to the config.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import protobuf from 'protobufjs';
import protojson from 'protobufjs/ext/protojson.js';
import { closest } from '../core/suggest.ts';

type Type = protobuf.Type;
type Field = protobuf.Field;
type Enum = protobuf.Enum;

const require = createRequire(import.meta.url);
const DEPS = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');

/** Directories imports are resolved against, in order (protobufjs ships google/protobuf/descriptor.proto). */
export const PROTO_INCLUDE_DIRS: readonly string[] = [
  join(DEPS, 'envoy-api'),
  join(DEPS, 'xds'),
  join(DEPS, 'googleapis'),
  join(DEPS, 'protoc-gen-validate'),
  dirname(require.resolve('protobufjs/package.json')),
];

/**
 * The only v3 files not loaded, each with the import @grpc/grpc-js-xds does not ship: the tracing,
 * metrics and OpenTelemetry payloads of third-party projects. Their types are then unknown `@type`s.
 */
export const SKIPPED_PROTO_FILES: Readonly<Record<string, string>> = {
  'envoy/config/trace/v3/opencensus.proto': 'opencensus/proto/trace/v1/trace_config.proto',
  // Re-exports every tracer, opencensus.proto included.
  'envoy/config/trace/v3/trace.proto': 'envoy/config/trace/v3/opencensus.proto (skipped)',
  'envoy/service/trace/v3/trace_service.proto': 'opencensus/proto/trace/v1/trace.proto',
  'envoy/extensions/access_loggers/open_telemetry/v3/logs_service.proto': 'opentelemetry/proto/common/v1/common.proto',
  'envoy/service/metrics/v3/metrics_service.proto': 'io/prometheus/client/metrics.proto',
};

function protoFilesUnder(base: string, dir: string): string[] {
  const full = join(base, dir);
  return readdirSync(full).flatMap((name) => {
    const path = join(full, name);
    if (statSync(path).isDirectory()) return protoFilesUnder(base, join(dir, name));
    return name.endsWith('.proto') ? [join(dir, name)] : [];
  });
}

/**
 * The v3 API: every file in a `v3`/`v3alpha` package of envoy, xds and udpa (relative to its
 * include directory), minus SKIPPED_PROTO_FILES. The v2 API files also shipped were removed from
 * Envoy in 1.18 and import v2 files that are not shipped; they are not part of what Envoy reads.
 */
export function envoyV3ProtoFiles(): string[] {
  const [envoyApi, xds] = PROTO_INCLUDE_DIRS as [string, string];
  const files = [
    ...protoFilesUnder(envoyApi, 'envoy'),
    ...protoFilesUnder(xds, 'xds'),
    ...protoFilesUnder(xds, 'udpa'),
  ];
  return files.filter((f) => /(^|\/)v3(alpha)?\//.test(f) && SKIPPED_PROTO_FILES[f] === undefined).sort();
}

/**
 * Loads `files` (paths relative to `includeDirs`) into a new resolved Root. An import found in no
 * include directory throws naming the import and the file importing it: protobufjs would
 * otherwise skip it silently and leave its types missing.
 */
export function loadProtoRoot(files: readonly string[], includeDirs: readonly string[]): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (origin: string, target: string): string => {
    if (target.startsWith('/') && existsSync(target)) return target;
    for (const dir of includeDirs) {
      const path = join(dir, target);
      if (existsSync(path)) return path;
    }
    const from = origin === '' ? 'the file list' : relative(process.cwd(), origin);
    throw new Error(`unresolved proto import ${JSON.stringify(target)} (imported by ${from})`);
  };
  // keepCase: field names as written in the .proto files (snake_case, as Envoy's docs show them).
  root.loadSync([...files], { keepCase: true });
  root.resolveAll();
  return root;
}

/** The loaded v3 API and what loading it cost. */
export interface EnvoyProtos {
  readonly root: protobuf.Root;
  /** Wall time of the one load in this process, in milliseconds. */
  readonly loadMs: number;
  readonly files: number;
}

let cached: EnvoyProtos | undefined;

/** Returns Envoy's v3 API, loaded on first use and kept for the rest of the process. */
export function envoyProtos(): EnvoyProtos {
  if (cached === undefined) {
    const start = performance.now();
    const root = loadProtoRoot(envoyV3ProtoFiles(), PROTO_INCLUDE_DIRS);
    cached = { root, loadMs: performance.now() - start, files: root.files.length };
  }
  return cached;
}

/** One problem found in a configuration, where it is and what is wrong. */
export interface Violation {
  /** JSON path from the validated value, e.g. `static_resources.listeners[0].name` (empty = the root). */
  readonly path: string;
  readonly message: string;
}

/** A message met during the walk: its full type name, where it is, and its JSON. */
export interface MessageNode {
  readonly type: string;
  readonly path: string;
  readonly value: Record<string, unknown>;
}

/** The outcome of validating one value. */
export interface ProtoValidation {
  readonly violations: readonly Violation[];
  /** Every message (Any payloads included) in document order, for rules protos cannot express. */
  readonly messages: readonly MessageNode[];
}

type Json = unknown;
type JsonObject = Record<string, unknown>;

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);
const nameOf = (t: Type | Enum): string => t.fullName.replace(/^\./, '');
const join2 = (path: string, key: string): string => (path === '' ? key : `${path}.${key}`);
const show = (v: unknown): string => (typeof v === 'bigint' ? String(v) : JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? String(x) : x)) ?? String(v));

/** Well-known types whose JSON form is not an object of fields: protojson parses them whole. */
const SPECIAL_JSON_TYPES = new Set([
  'google.protobuf.Duration',
  'google.protobuf.Timestamp',
  'google.protobuf.FieldMask',
  'google.protobuf.Struct',
  'google.protobuf.Value',
  'google.protobuf.ListValue',
  'google.protobuf.DoubleValue',
  'google.protobuf.FloatValue',
  'google.protobuf.Int64Value',
  'google.protobuf.UInt64Value',
  'google.protobuf.Int32Value',
  'google.protobuf.UInt32Value',
  'google.protobuf.BoolValue',
  'google.protobuf.StringValue',
  'google.protobuf.BytesValue',
]);

const WRAPPER_TYPES = new Set([...SPECIAL_JSON_TYPES].filter((t) => t.endsWith('Value') && t !== 'google.protobuf.Value' && t !== 'google.protobuf.ListValue'));

/** protojson's message, its type names without their leading dot. */
function parseError(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).replace(/^\./, '');
}

class Walker {
  readonly violations: Violation[] = [];
  readonly messages: MessageNode[] = [];
  readonly root: protobuf.Root;

  constructor(root: protobuf.Root) {
    this.root = root;
  }

  fail(path: string, message: string): void {
    this.violations.push({ path, message });
  }

  /** Whether nothing at or under `path` was reported (further checks there would only repeat it). */
  clean(path: string): boolean {
    return this.violations.every((v) => v.path !== path && !v.path.startsWith(`${path}.`) && !v.path.startsWith(`${path}[`));
  }

  /** Parses `json` as `type` with the strict ProtoJSON parser; reports its error at `path`. */
  parseStrict(type: Type, json: Json, path: string): boolean {
    try {
      protojson.fromJson(type, json);
      return true;
    } catch (error) {
      this.fail(path, parseError(error));
      return false;
    }
  }

  message(type: Type, value: Json, path: string): void {
    const name = nameOf(type);
    if (name === 'google.protobuf.Any') return this.any(type, value, path);
    if (SPECIAL_JSON_TYPES.has(name)) {
      this.parseStrict(type, value, path);
      return;
    }
    if (!isObject(value)) {
      this.fail(path, `expected an object (${name}), got ${show(value)}`);
      return;
    }
    this.messages.push({ type: name, path, value });
    const seenOneofs = new Map<string, string>();
    const seenFields = new Set<string>();
    for (const key of Object.keys(value)) {
      const field = lookupField(type, key);
      const fieldPath = join2(path, key);
      if (field === undefined) {
        const known = type.fieldsArray.map((f) => f.name);
        const hint = closest(key, known);
        this.fail(fieldPath, `unknown field ${JSON.stringify(key)} in ${name}${hint === undefined ? '' : ` (did you mean ${JSON.stringify(hint)}?)`}`);
        continue;
      }
      if (seenFields.has(field.name)) {
        this.fail(fieldPath, `${field.name} is given twice (as ${field.name} and ${field.jsonName})`);
        continue;
      }
      seenFields.add(field.name);
      const item = value[key];
      // ProtoJSON reads null as "not set".
      if (item === null) continue;
      if (field.partOf) {
        const other = seenOneofs.get(field.partOf.name);
        if (other !== undefined) this.fail(fieldPath, `${other} and ${field.name} are both set, but only one of oneof ${field.partOf.name} may be`);
        seenOneofs.set(field.partOf.name, field.name);
      }
      if (field.options?.['deprecated'] === true) this.fail(fieldPath, `${name}.${field.name} is deprecated`);
      this.field(type, field, key, item, fieldPath);
    }
    this.checkAbsent(type, value, path);
  }

  field(parent: Type, field: Field, key: string, value: Json, path: string): void {
    const target = field.resolvedType;
    if (field.map) {
      if (!isObject(value)) {
        this.fail(path, `expected an object for map ${field.name}, got ${show(value)}`);
        return;
      }
      for (const [k, v] of Object.entries(value)) {
        const entryPath = `${path}[${JSON.stringify(k)}]`;
        if (target instanceof protobuf.Type) {
          // The key alone, with an empty value, so a bad key is reported once.
          if (this.parseStrict(parent, { [key]: { [k]: {} } }, entryPath)) this.message(target, v, entryPath);
        } else {
          this.parseStrict(parent, { [key]: { [k]: v } }, entryPath);
        }
      }
    } else if (field.repeated) {
      if (!Array.isArray(value)) {
        this.fail(path, `expected a list for ${field.name}, got ${show(value)}`);
        return;
      }
      value.forEach((v, i) => {
        const itemPath = `${path}[${i}]`;
        if (target instanceof protobuf.Type) this.message(target, v, itemPath);
        else if (this.parseStrict(parent, { [key]: [v] }, itemPath)) this.enumValue(field, v, itemPath);
      });
    } else if (target instanceof protobuf.Type) {
      this.message(target, value, path);
    } else if (this.parseStrict(parent, { [key]: value }, path)) {
      this.enumValue(field, value, path);
    }
    if (this.clean(path)) checkRules(this, field, value, path);
  }

  /** Deprecated enum values (e.g. a load-balancing policy Envoy dropped) are refused too. */
  enumValue(field: Field, value: Json, path: string): void {
    const target = field.resolvedType;
    if (!(target instanceof protobuf.Enum) || typeof value !== 'string') return;
    if (target.valuesOptions?.[value]?.['deprecated'] === true) this.fail(path, `${nameOf(target)}.${value} is deprecated`);
  }

  any(type: Type, value: Json, path: string): void {
    if (!isObject(value)) {
      this.fail(path, `expected an object (google.protobuf.Any), got ${show(value)}`);
      return;
    }
    const url = value['@type'];
    if (url === undefined) {
      this.fail(path, 'google.protobuf.Any without @type: Envoy cannot tell what it holds');
      return;
    }
    if (typeof url !== 'string' || !url.includes('/')) {
      this.fail(join2(path, '@type'), `@type must be a type URL such as type.googleapis.com/<message>, got ${show(url)}`);
      return;
    }
    const inner = this.lookupType(url.slice(url.lastIndexOf('/') + 1));
    if (inner === undefined) {
      this.fail(join2(path, '@type'), `unknown @type ${JSON.stringify(url)}: no such message in Envoy's v3 API`);
      return;
    }
    this.messages.push({ type: 'google.protobuf.Any', path, value });
    if (SPECIAL_JSON_TYPES.has(nameOf(inner))) {
      // A well-known type with a special JSON form sits under "value" (ProtoJSON's rule).
      const extra = Object.keys(value).filter((k) => k !== '@type' && k !== 'value');
      for (const k of extra) this.fail(join2(path, k), `unknown field ${JSON.stringify(k)} in an Any holding ${nameOf(inner)}`);
      this.message(inner, value['value'], join2(path, 'value'));
      return;
    }
    const body = Object.fromEntries(Object.entries(value).filter(([k]) => k !== '@type'));
    this.message(inner, body, path);
    // protojson is the final word on the payload as Envoy would unpack it.
    if (this.clean(path)) this.parseStrict(type, value, path);
  }

  lookupType(name: string): Type | undefined {
    try {
      return this.root.lookupType(name);
    } catch {
      return undefined;
    }
  }

  /** Rules that hold for fields left out: PGV checks proto3 scalars at their default value. */
  checkAbsent(type: Type, value: JsonObject, path: string): void {
    const present = (f: Field): boolean => {
      const v = value[f.name] ?? value[f.jsonName];
      return v !== undefined && v !== null;
    };
    for (const field of type.fieldsArray) {
      if (present(field)) continue;
      // A member of a oneof is only validated when it is the one set.
      if (field.partOf) continue;
      checkRules(this, field, undefined, join2(path, field.name));
    }
    for (const oneof of type.oneofsArray) {
      const required = oneof.options?.['(validate.required)'] === true;
      if (required && !oneof.fieldsArray.some(present)) {
        this.fail(path, `one of ${oneof.fieldsArray.map((f) => f.name).join(', ')} is required (oneof ${oneof.name} in ${nameOf(type)})`);
      }
    }
  }
}

function lookupField(type: Type, key: string): Field | undefined {
  return type.fields[key] ?? type.fieldsArray.find((f) => f.jsonName === key);
}

// ---- protoc-gen-validate rules ------------------------------------------------------------

type Rules = Record<string, Record<string, unknown>>;

/** The `(validate.rules)` of a field, merged from its parsed options. */
function rulesOf(field: Field): Rules | undefined {
  let rules: Rules | undefined;
  for (const option of field.parsedOptions ?? []) {
    const r = (option as Record<string, unknown>)['(validate.rules)'];
    if (isObject(r)) rules = { ...rules, ...(r as Rules) };
  }
  return rules;
}

const NUMERIC = new Set(['double', 'float', 'int32', 'int64', 'uint32', 'uint64', 'sint32', 'sint64', 'fixed32', 'fixed64', 'sfixed32', 'sfixed64']);

/** Duration JSON ("1.5s") or a rule's {seconds, nanos} as nanoseconds. */
function durationNanos(value: unknown): bigint | undefined {
  if (typeof value === 'string') {
    const m = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/.exec(value);
    if (!m) return undefined;
    const nanos = BigInt(m[2] ?? '0') * 1_000_000_000n + BigInt((m[3] ?? '').padEnd(9, '0') || '0');
    return m[1] ? -nanos : nanos;
  }
  if (isObject(value)) return BigInt(String(value['seconds'] ?? 0)) * 1_000_000_000n + BigInt(String(value['nanos'] ?? 0));
  return undefined;
}

function compareRange(w: Walker, path: string, value: number | bigint, r: Record<string, unknown>, fmt: (v: unknown) => string, toNum: (v: unknown) => number | bigint | undefined): void {
  const n = (k: string) => (r[k] === undefined ? undefined : toNum(r[k]));
  const gt = n('gt'), gte = n('gte'), lt = n('lt'), lte = n('lte'), konst = n('const');
  if (konst !== undefined && value !== konst) w.fail(path, `must equal ${fmt(r['const'])}`);
  const lower = gt ?? gte;
  const upper = lt ?? lte;
  const aboveLower = lower === undefined || (gt !== undefined ? value > gt : value >= (gte as number | bigint));
  const belowUpper = upper === undefined || (lt !== undefined ? value < lt : value <= (lte as number | bigint));
  // PGV: an upper bound below the lower bound means "outside the range".
  const ok = lower !== undefined && upper !== undefined && upper < lower ? aboveLower || belowUpper : aboveLower && belowUpper;
  if (!ok) {
    const parts = Object.entries(r).filter(([k]) => ['gt', 'gte', 'lt', 'lte'].includes(k)).map(([k, v]) => `${k} ${fmt(v)}`);
    w.fail(path, `value ${fmt(value)} out of range (${parts.join(', ')})`);
  }
  for (const [key, list] of [['in', true], ['not_in', false]] as const) {
    const items = r[key];
    if (Array.isArray(items) && items.map(toNum).includes(value) !== list) w.fail(path, `value ${fmt(value)} must ${list ? '' : 'not '}be one of ${fmt(items)}`);
  }
}

const HEADER_NAME_STRICT = /^:?[0-9a-zA-Z!#$%&'*+\-.^_|~`]+$/;
const HEADER_VALUE_STRICT = /^[^\u0000-\u0008\u000A-\u001F\u007F]*$/;
const HEADER_LAX = /^[^\u0000\u000A\u000D]*$/;

function checkString(w: Walker, path: string, s: string, r: Record<string, unknown>): void {
  if (r['ignore_empty'] === true && s === '') return;
  const chars = [...s].length;
  const bytes = Buffer.byteLength(s);
  const num = (k: string) => (typeof r[k] === 'number' || typeof r[k] === 'string' ? Number(r[k]) : undefined);
  for (const [key, test, what] of [
    ['min_len', (n: number) => chars >= n, 'at least %d character(s)'],
    ['max_len', (n: number) => chars <= n, 'at most %d character(s)'],
    ['len', (n: number) => chars === n, 'exactly %d character(s)'],
    ['min_bytes', (n: number) => bytes >= n, 'at least %d byte(s)'],
    ['max_bytes', (n: number) => bytes <= n, 'at most %d byte(s)'],
  ] as const) {
    const n = num(key);
    if (n !== undefined && !test(n)) w.fail(path, `${show(s)} must have ${what.replace('%d', String(n))}`);
  }
  for (const key of Object.keys(r)) {
    const v = r[key];
    switch (key) {
      case 'min_len': case 'max_len': case 'len': case 'min_bytes': case 'max_bytes': case 'ignore_empty': case 'strict':
        break;
      case 'pattern':
        if (!new RegExp(String(v), 'u').test(s)) w.fail(path, `${show(s)} does not match ${show(v)}`);
        break;
      case 'prefix': if (!s.startsWith(String(v))) w.fail(path, `${show(s)} must start with ${show(v)}`); break;
      case 'suffix': if (!s.endsWith(String(v))) w.fail(path, `${show(s)} must end with ${show(v)}`); break;
      case 'contains': if (!s.includes(String(v))) w.fail(path, `${show(s)} must contain ${show(v)}`); break;
      case 'in': if (Array.isArray(v) && !v.includes(s)) w.fail(path, `${show(s)} must be one of ${show(v)}`); break;
      case 'not_in': if (Array.isArray(v) && v.includes(s)) w.fail(path, `${show(s)} must not be one of ${show(v)}`); break;
      case 'well_known_regex': {
        const strict = r['strict'] !== false;
        const re = v === 'HTTP_HEADER_NAME' ? (strict ? HEADER_NAME_STRICT : HEADER_LAX) : v === 'HTTP_HEADER_VALUE' ? (strict ? HEADER_VALUE_STRICT : HEADER_LAX) : undefined;
        if (re === undefined) w.fail(path, `unsupported validation rule string.well_known_regex ${show(v)}`);
        else if (!re.test(s)) w.fail(path, `${show(s)} is not a valid ${String(v).toLowerCase().replaceAll('_', ' ')}`);
        break;
      }
      default:
        w.fail(path, `unsupported validation rule string.${key}`);
    }
  }
}

/** Applies the field's PGV rules to `value` (undefined when the field is absent). */
function checkRules(w: Walker, field: Field, value: Json, path: string, rules: Rules | undefined = rulesOf(field)): void {
  if (rules === undefined) return;
  const target = field.resolvedType;
  const targetName = target === null ? field.type : nameOf(target);
  const isMessage = target instanceof protobuf.Type;
  const isWrapper = isMessage && WRAPPER_TYPES.has(targetName);
  for (const [kind, r] of Object.entries(rules)) {
    if (!isObject(r)) continue;
    if (kind === 'message') {
      if (r['required'] === true && value === undefined) w.fail(path, `${field.name} is required`);
      continue;
    }
    if (kind === 'repeated' && field.repeated) {
      const items = Array.isArray(value) ? value : [];
      const min = r['min_items'], max = r['max_items'];
      if (min !== undefined && items.length < Number(min)) w.fail(path, `needs at least ${String(min)} item(s)`);
      if (max !== undefined && items.length > Number(max)) w.fail(path, `allows at most ${String(max)} item(s)`);
      if (r['unique'] === true && new Set(items.map((i) => JSON.stringify(i))).size !== items.length) w.fail(path, 'items must be unique');
      const itemRules = r['items'];
      if (isObject(itemRules)) items.forEach((item, i) => checkRules(w, field, item, `${path}[${i}]`, itemRules as Rules));
      for (const key of Object.keys(r)) if (!['min_items', 'max_items', 'unique', 'items', 'ignore_empty'].includes(key)) w.fail(path, `unsupported validation rule repeated.${key}`);
      continue;
    }
    if (kind === 'map' && field.map) {
      const entries = isObject(value) ? Object.entries(value) : [];
      if (r['min_pairs'] !== undefined && entries.length < Number(r['min_pairs'])) w.fail(path, `needs at least ${String(r['min_pairs'])} entr(ies)`);
      if (r['max_pairs'] !== undefined && entries.length > Number(r['max_pairs'])) w.fail(path, `allows at most ${String(r['max_pairs'])} entr(ies)`);
      const keys = r['keys'], values = r['values'];
      for (const [k, v] of entries) {
        if (isObject(keys) && isObject(keys['string'])) checkString(w, `${path}[${JSON.stringify(k)}]`, k, keys['string'] as Record<string, unknown>);
        if (isObject(values)) checkRules(w, field, v, `${path}[${JSON.stringify(k)}]`, values as Rules);
      }
      continue;
    }
    // A rule on a single value; in a list, `value` is one item. Rules on messages (and on wrapper
    // types) apply only when the field is set; PGV checks proto3 scalars at their default.
    if ((isMessage || field.hasPresence) && value === undefined) {
      if ((kind === 'duration' || kind === 'any' || kind === 'timestamp') && r['required'] === true) w.fail(path, `${field.name} is required`);
      continue;
    }
    if (field.repeated && !Array.isArray(value) && value === undefined) continue;
    if (kind === 'string') {
      if (isMessage && !isWrapper) continue;
      checkString(w, path, typeof value === 'string' ? value : '', r);
    } else if (NUMERIC.has(kind)) {
      const isInt = !['double', 'float'].includes(kind);
      const toNum = (v: unknown): number | bigint | undefined => {
        if (v === undefined) return undefined;
        if (isInt) return BigInt(typeof v === 'number' ? Math.trunc(v) : String(v));
        return Number(v);
      };
      const n = toNum(value ?? 0);
      if (n !== undefined) compareRange(w, path, n, r, show, toNum);
      for (const key of Object.keys(r)) if (!['gt', 'gte', 'lt', 'lte', 'const', 'in', 'not_in', 'ignore_empty'].includes(key)) w.fail(path, `unsupported validation rule ${kind}.${key}`);
    } else if (kind === 'bool') {
      if (r['const'] !== undefined && (value ?? false) !== r['const']) w.fail(path, `must be ${String(r['const'])}`);
    } else if (kind === 'enum') {
      const e = target instanceof protobuf.Enum ? target : undefined;
      const number = typeof value === 'number' ? value : typeof value === 'string' ? e?.values[value] : 0;
      if (r['defined_only'] === true && (number === undefined || e?.valuesById[number] === undefined)) w.fail(path, `${show(value)} is not a value of ${targetName}`);
      if (r['const'] !== undefined && number !== r['const']) w.fail(path, `must be ${show(e?.valuesById[Number(r['const'])])}`);
      if (Array.isArray(r['in']) && !r['in'].includes(number)) w.fail(path, `${show(value)} is not allowed here`);
      if (Array.isArray(r['not_in']) && r['not_in'].includes(number)) w.fail(path, `${show(value)} is not allowed here`);
    } else if (kind === 'duration') {
      const nanos = durationNanos(value);
      if (nanos === undefined) continue; // protojson already reported it
      const toNum = (v: unknown) => durationNanos(v);
      const fmt = (v: unknown): string => {
        const n = typeof v === 'bigint' ? v : durationNanos(v);
        return n === undefined ? show(v) : `${Number(n) / 1e9}s`;
      };
      compareRange(w, path, nanos, Object.fromEntries(Object.entries(r).filter(([k]) => k !== 'required')), fmt, toNum);
    } else if (kind === 'any') {
      const url = isObject(value) ? value['@type'] : undefined;
      if (Array.isArray(r['in']) && !r['in'].includes(url)) w.fail(path, `@type ${show(url)} is not allowed here`);
      if (Array.isArray(r['not_in']) && r['not_in'].includes(url)) w.fail(path, `@type ${show(url)} is not allowed here`);
    } else if (kind === 'bytes') {
      const length = typeof value === 'string' ? Buffer.from(value, 'base64').length : 0;
      if (r['min_len'] !== undefined && length < Number(r['min_len'])) w.fail(path, `needs at least ${String(r['min_len'])} bytes`);
      if (r['max_len'] !== undefined && length > Number(r['max_len'])) w.fail(path, `allows at most ${String(r['max_len'])} bytes`);
    } else {
      w.fail(path, `unsupported validation rule ${kind}`);
    }
  }
}

// ---- entry points ----------------------------------------------------------------------------

/**
 * Validates `json` as the Envoy message `typeName` (e.g. `envoy.config.bootstrap.v3.Bootstrap`):
 * every problem with its path, and every message met, for further rules.
 */
export function validateEnvoyMessage(typeName: string, json: unknown): ProtoValidation {
  const { root } = envoyProtos();
  const type = root.lookupType(typeName);
  const walker = new Walker(root);
  walker.message(type, json, '');
  // The strict parser is the final word: anything it refuses that the walk let through is reported too.
  if (walker.violations.length === 0) walker.parseStrict(type, json, '');
  return { violations: walker.violations, messages: walker.messages };
}

/** Formats violations one per line, `path: message`. */
export function formatViolations(violations: readonly Violation[]): string {
  return violations.map((v) => `${v.path === '' ? '(root)' : v.path}: ${v.message}`).join('\n');
}

// The merge envoy-init writes the final bootstrap with (core/proto-merge.ts) is protobuf's MergeFrom,
// proven two ways for each rule (SPEC.md §4a): against the expected result written out by hand, and
// against a second oracle — protobufjs 8, whose decoder merges a message read twice per the
// protobuf encoding spec ("concatenating two messages merges them"): both layers are encoded with
// Envoy's protos, the bytes concatenated and decoded. The compact schema it runs on is checked to be
// what the protos give today.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import protojson from 'protobufjs/ext/protojson.js';
import { mergeLayers, normalizeLayer } from '../src/core/proto-merge.ts';
import { buildMergeSchema, renderSchemaModule } from '../src/envoy/merge-schema.ts';
import { envoyProtos } from '../src/envoy/protos.ts';

type Obj = Record<string, any>;
const { root } = envoyProtos();
const BOOTSTRAP = root.lookupType('envoy.config.bootstrap.v3.Bootstrap');

/** What protobufjs makes of base's bytes followed by top's: MergeFrom by the encoding spec. */
function concatenated(base: Obj, top: Obj): Obj {
  const a = BOOTSTRAP.encode(protojson.fromJson(BOOTSTRAP, base)).finish();
  const b = BOOTSTRAP.encode(protojson.fromJson(BOOTSTRAP, top)).finish();
  const bytes = new Uint8Array(a.length + b.length);
  bytes.set(a);
  bytes.set(b, a.length);
  return protojson.toJson(BOOTSTRAP, BOOTSTRAP.decode(bytes)) as Obj;
}

/** A value in protobufjs's canonical ProtoJSON, so two spellings of one message compare equal. */
const canonical = (value: Obj): Obj => protojson.toJson(BOOTSTRAP, protojson.fromJson(BOOTSTRAP, value)) as Obj;

function merge(base: Obj, top: Obj) {
  const b = normalizeLayer(base);
  const t = normalizeLayer(top);
  assert.ok(b.ok && t.ok, JSON.stringify([b, t]));
  return mergeLayers(b.value, t.value);
}

const CARES = 'type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig';
const listener = (name: string, port: number): Obj => ({ name, address: { socket_address: { address: '0.0.0.0', port_value: port } } });

/** One case per rule of MergeFrom: base, top, the merged result, and which paths the top replaced. */
const CASES: readonly { name: string; base: Obj; top: Obj; merged: Obj; replaced: string[] }[] = [
  {
    name: 'singular scalar: the top wins',
    base: { admin: { profile_path: '/base' } },
    top: { admin: { profile_path: '/top' } },
    merged: { admin: { profile_path: '/top' } },
    replaced: ['admin.profile_path'],
  },
  {
    name: 'proto3 implicit-presence scalar at its default in the top: the base stays',
    base: { admin: { profile_path: '/base' }, stats_server_version_override: '7' },
    top: { admin: { profile_path: '' }, stats_server_version_override: '0' },
    merged: { admin: { profile_path: '/base' }, stats_server_version_override: '7' },
    replaced: [],
  },
  {
    name: 'enum at its zero value in the top: the base stays; another value wins',
    base: { static_resources: { clusters: [] }, admin: { address: { socket_address: { address: '::1', port_value: 1, protocol: 'UDP' } } } },
    top: { admin: { address: { socket_address: { address: '::1', port_value: 1, protocol: 'TCP' } } } },
    merged: { static_resources: { clusters: [] }, admin: { address: { socket_address: { address: '::1', port_value: 1, protocol: 'UDP' } } } },
    replaced: [],
  },
  {
    name: 'singular message: merged field by field, recursively',
    base: { admin: { address: { socket_address: { address: '0.0.0.0', port_value: 9901 } }, profile_path: '/p' } },
    top: { admin: { address: { socket_address: { port_value: 15000 } } } },
    merged: { admin: { address: { socket_address: { address: '0.0.0.0', port_value: 15000 } }, profile_path: '/p' } },
    replaced: ['admin.address.socket_address.port_value'],
  },
  {
    name: 'repeated: appended, the top after the base',
    base: { static_resources: { listeners: [listener('a', 1)] } },
    top: { static_resources: { listeners: [listener('b', 2), listener('c', 3)] } },
    merged: { static_resources: { listeners: [listener('a', 1), listener('b', 2), listener('c', 3)] } },
    replaced: [],
  },
  {
    name: 'repeated scalars: appended too',
    base: { node: { client_features: ['x'] } },
    top: { node: { client_features: ['y'] } },
    merged: { node: { client_features: ['x', 'y'] } },
    replaced: [],
  },
  {
    name: 'map: the top entry replaces the base entry of the same key whole (values not merged)',
    base: { certificate_provider_instances: { a: { name: 'base-a', typed_config: { '@type': 'type.googleapis.com/google.protobuf.Empty' } }, b: { name: 'base-b' } } },
    top: { certificate_provider_instances: { a: { name: 'top-a' }, c: { name: 'top-c' } } },
    merged: { certificate_provider_instances: { a: { name: 'top-a' }, b: { name: 'base-b' }, c: { name: 'top-c' } } },
    replaced: ['certificate_provider_instances["a"]'],
  },
  {
    name: 'google.protobuf.Any: replaced whole (type_url and bytes)',
    base: { typed_dns_resolver_config: { name: 'dns', typed_config: { '@type': CARES, use_resolvers_as_fallback: true } } },
    top: { typed_dns_resolver_config: { typed_config: { '@type': CARES, filter_unroutable_families: true } } },
    merged: { typed_dns_resolver_config: { name: 'dns', typed_config: { '@type': CARES, filter_unroutable_families: true } } },
    replaced: ['typed_dns_resolver_config.typed_config'],
  },
  {
    name: "oneof: the member the top sets clears the base's other member",
    base: { admin: { address: { pipe: { path: '/run/admin.sock' } } } },
    top: { admin: { address: { socket_address: { address: '127.0.0.1', port_value: 15000 } } } },
    merged: { admin: { address: { socket_address: { address: '127.0.0.1', port_value: 15000 } } } },
    replaced: ['admin.address.pipe'],
  },
  {
    name: 'oneof: the same member in both merges as its type does',
    base: { admin: { address: { socket_address: { address: '0.0.0.0', port_value: 9901, ipv4_compat: true } } } },
    top: { admin: { address: { socket_address: { address: '127.0.0.1' } } } },
    merged: { admin: { address: { socket_address: { address: '127.0.0.1', port_value: 9901, ipv4_compat: true } } } },
    replaced: ['admin.address.socket_address.address'],
  },
  {
    name: "Struct is map<string, Value>: the top's keys replace the base's, values not merged",
    base: { node: { metadata: { keep: 'base', nested: { x: 1 } } } },
    top: { node: { metadata: { nested: { y: 2 }, added: true } } },
    merged: { node: { metadata: { keep: 'base', nested: { y: 2 }, added: true } } },
    replaced: ['node.metadata["nested"]'],
  },
  {
    name: "wrapper (BoolValue): its one implicit value — a false top leaves the base's true",
    base: { static_resources: { clusters: [] }, stats_config: { use_all_default_tags: true, stats_matcher: { reject_all: true } } },
    top: { stats_config: { use_all_default_tags: false } },
    merged: { static_resources: { clusters: [] }, stats_config: { use_all_default_tags: true, stats_matcher: { reject_all: true } } },
    replaced: [],
  },
  {
    name: 'Duration: seconds and nanos are two implicit-presence fields',
    base: { stats_flush_interval: '5.250s' },
    top: { stats_flush_interval: '10s' },
    merged: { stats_flush_interval: '10.250s' },
    replaced: ['stats_flush_interval'],
  },
  {
    name: 'field names: JSON and proto spellings are one field',
    base: { staticResources: { listeners: [listener('a', 1)] } },
    top: { static_resources: { listeners: [listener('b', 2)] } },
    merged: { static_resources: { listeners: [listener('a', 1), listener('b', 2)] } },
    replaced: [],
  },
];

for (const c of CASES) {
  test(`MergeFrom: ${c.name}`, () => {
    const { merged, overwrites } = merge(c.base, c.top);
    assert.deepEqual(canonical(merged), canonical(c.merged), 'the expected result');
    assert.deepEqual(canonical(merged), concatenated(c.base, c.top), 'protobufjs: the two layers concatenated');
    assert.deepEqual(overwrites.map((o) => o.path), c.replaced);
  });
}

test('MergeFrom on arbitrary layers agrees with protobufjs (concatenated encodings)', () => {
  const scalar = fc.oneof(fc.constant(''), fc.constantFrom('a', 'b'));
  const port = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 3 }));
  const address = fc.oneof(
    fc.record({ socket_address: fc.record({ address: scalar, port_value: port }, { requiredKeys: [] }) }),
    fc.record({ pipe: fc.record({ path: fc.constantFrom('/a', '/b') }) }),
  );
  const layer = fc.record(
    {
      admin: fc.record({ address, profile_path: scalar }, { requiredKeys: [] }),
      node: fc.record(
        { id: scalar, metadata: fc.dictionary(fc.constantFrom('k', 'l'), fc.oneof(fc.integer({ min: 0, max: 2 }), fc.dictionary(fc.constantFrom('x', 'y'), fc.boolean()))), client_features: fc.array(scalar, { maxLength: 2 }) },
        { requiredKeys: [] },
      ),
      stats_flush_interval: fc.constantFrom('1s', '0.500s', '2.250s', '0s'),
      static_resources: fc.record({ listeners: fc.array(fc.constantFrom('p', 'q').map((n) => listener(n, 1)), { maxLength: 2 }) }),
    },
    { requiredKeys: [] },
  );
  fc.assert(
    fc.property(layer, layer, (base, top) => {
      assert.deepEqual(canonical(merge(base, top).merged), concatenated(base, top));
    }),
    { numRuns: 300 },
  );
});

test('a layer is read against the schema: unknown fields, wrong shapes and two oneof members are refused with their paths', () => {
  const read = normalizeLayer({
    static_resources: { listner: [] },
    admin: [],
    node: { id: 5 },
    stats_flush_interval: 'soon',
    layered_runtime: { layers: { name: 'x' } },
    overload_manager: { resource_monitors: [{ name: 'm', typed_config: { value: 1 } }] },
    cluster_manager: { upstream_bind_config: { source_address: { address: 'x', port_value: 1, named_port: 'y' } } },
  });
  assert.ok(!read.ok);
  assert.deepEqual(
    read.problems.map((p) => `${p.path}: ${p.message}`).sort(),
    [
      'static_resources.listner: unknown field "listner" in envoy.config.bootstrap.v3.Bootstrap.StaticResources (did you mean "listeners"?)',
      'node.id: expected string, got 5',
      'stats_flush_interval: expected a duration such as "1.5s", got "soon"',
      'admin: expected an object (envoy.config.bootstrap.v3.Admin), got []',
      'layered_runtime.layers: expected a list for layers, got {"name":"x"}',
      'overload_manager.resource_monitors[0].typed_config: google.protobuf.Any without @type: Envoy cannot tell what it holds',
      'cluster_manager.upstream_bind_config.source_address.named_port: port_value and named_port are both set, but only one of oneof port_specifier may be',
    ].sort(),
  );
});

test("the compact schema (core/envoy-schema.ts) is what Envoy's protos give today (`npm run schema` refreshes it)", () => {
  const committed = readFileSync(new URL('../src/core/envoy-schema.ts', import.meta.url), 'utf8');
  const schema = buildMergeSchema();
  assert.equal(committed, renderSchemaModule(schema), 'stale: run `npm run schema` and review the diff');
  assert.ok(Object.keys(schema.messages).length > 100);
  // Any is a leaf: its payload is replaced whole, never merged, so nothing behind it is needed.
  assert.deepEqual(schema.messages['google.protobuf.Any'], []);
});

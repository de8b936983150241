// The user's own Envoy configuration merged with the generated bootstrap (SPEC.md §4a): Envoy's
// `-c BASE --config-yaml TOP` semantics, reproduced by envoy-init so that Envoy loads one file.
// Layers, weakest first: the cluster-wide fragment (`proxy.bootstrapOverride`), the pod's ConfigMap
// (`envoy-injector.io/bootstrap-override`), then the generated bootstrap, which therefore keeps
// admin, node, capture, readiness and metrics. A fragment is refused, naming what clashes, when it
// redefines a listener or cluster name the injector uses, listens on a port of the proxy, sets
// something the generated bootstrap would silently replace (admin's address, node's id…), or does
// not read as a Bootstrap (unknown field, wrong shape). The strict check against the protos is the
// CLI's, `check`'s and the config check's (envoy/validate.ts); envoy-init has the schema only. Pure.
import { PROXY_PORTS } from '../constants.ts';
import { CLUSTERS, LISTENERS } from './bootstrap.ts';
import { mergeLayers, normalizeLayer } from './proto-merge.ts';
import type { Json, JsonObject } from './types.ts';

/** One fragment and how messages name it (e.g. `ConfigMap web-envoy (key envoy.yaml)`). */
export interface Fragment {
  readonly source: string;
  readonly value: unknown;
}

/** The names of the injector's listeners and clusters: a fragment may not define them (whether ADS is on or not). */
export const RESERVED_NAMES = {
  listeners: Object.values(LISTENERS) as readonly string[],
  clusters: Object.values(CLUSTERS) as readonly string[],
} as const;

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const show = (v: Json | undefined): string => {
  const text = JSON.stringify(v) ?? 'nothing';
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
};

/** The ports a listener binds (its address and additional addresses). */
function listenerPorts(listener: Obj): { path: string; port: number }[] {
  const ports: { path: string; port: number }[] = [];
  const portOf = (address: unknown): number | undefined => {
    const socket = isObject(address) ? address['socket_address'] : undefined;
    const port = isObject(socket) ? socket['port_value'] : undefined;
    return port === undefined ? undefined : Number(port);
  };
  const main = portOf(listener['address']);
  if (main !== undefined) ports.push({ path: 'address.socket_address.port_value', port: main });
  list(listener['additional_addresses']).forEach((extra, i) => {
    const port = portOf(isObject(extra) ? extra['address'] : undefined);
    if (port !== undefined) ports.push({ path: `additional_addresses[${i}].address.socket_address.port_value`, port });
  });
  return ports;
}

/** Problems of one normalized fragment on its own: reserved names and the proxy's ports. */
function clashes(fragment: JsonObject): string[] {
  const problems: string[] = [];
  const resources = isObject(fragment['static_resources']) ? fragment['static_resources'] : {};
  list(resources['listeners']).forEach((listener, i) => {
    if (!isObject(listener)) return;
    const path = `static_resources.listeners[${i}]`;
    const name = listener['name'];
    if (typeof name === 'string' && RESERVED_NAMES.listeners.includes(name)) {
      problems.push(`${path}.name: ${JSON.stringify(name)} is a listener of the injector; give yours another name`);
    }
    for (const { path: portPath, port } of listenerPorts(listener)) {
      if (PROXY_PORTS.includes(port)) problems.push(`${path}.${portPath}: port ${port} is the proxy's own (${PROXY_PORTS.join(', ')}); listen on another port`);
    }
  });
  list(resources['clusters']).forEach((cluster, i) => {
    const name = isObject(cluster) ? cluster['name'] : undefined;
    if (typeof name === 'string' && RESERVED_NAMES.clusters.includes(name)) {
      problems.push(`static_resources.clusters[${i}].name: ${JSON.stringify(name)} is a cluster of the injector; give yours another name`);
    }
  });
  return problems;
}

/** Names given twice across the layers (Envoy refuses a bootstrap with two listeners or clusters of one name). */
function duplicateNames(merged: JsonObject): string[] {
  const problems: string[] = [];
  const resources = isObject(merged['static_resources']) ? merged['static_resources'] : {};
  for (const what of ['listeners', 'clusters'] as const) {
    const seen = new Set<string>();
    for (const item of list(resources[what])) {
      const name = isObject(item) ? item['name'] : undefined;
      if (typeof name !== 'string') continue;
      if (seen.has(name)) problems.push(`static_resources.${what}: ${JSON.stringify(name)} is defined by more than one fragment`);
      seen.add(name);
    }
  }
  return problems;
}

/** Why a set of fragments cannot be merged: every problem, each naming its fragment and path. */
export class BootstrapOverrideError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(problems.join('; '));
    this.name = 'BootstrapOverrideError';
    this.problems = problems;
  }
}

/**
 * Returns what each fragment alone gets wrong (schema, reserved names, proxy ports), each problem as
 * `SOURCE: PATH: what`, and the fragments normalized (proto field names, no nulls).
 */
export function checkFragments(fragments: readonly Fragment[]): { readonly problems: readonly string[]; readonly normalized: readonly JsonObject[] } {
  const problems: string[] = [];
  const normalized: JsonObject[] = [];
  for (const fragment of fragments) {
    if (!isObject(fragment.value)) {
      problems.push(`${fragment.source}: a bootstrap fragment must be a mapping (a partial Envoy Bootstrap), got ${show(fragment.value as Json)}`);
      continue;
    }
    const read = normalizeLayer(fragment.value);
    if (!read.ok) {
      problems.push(...read.problems.map((p) => `${fragment.source}: ${p.path === '' ? '(root)' : p.path}: ${p.message}`));
      // The clashes too, as far as the fragment reads (proto field names).
      problems.push(...clashes(fragment.value as JsonObject).map((p) => `${fragment.source}: ${p}`));
      continue;
    }
    problems.push(...clashes(read.value).map((p) => `${fragment.source}: ${p}`));
    normalized.push(read.value);
  }
  return { problems, normalized };
}

/**
 * Returns the bootstrap Envoy loads: MergeFrom of the fragments (weakest first) with the generated
 * bootstrap on top; the generated bootstrap alone, unchanged, without fragments. Throws
 * BootstrapOverrideError naming every problem, including each setting of a fragment the generated
 * bootstrap would replace (the injector's own admin, node, listeners and clusters are not the user's).
 */
export function layerBootstrap(generated: JsonObject, fragments: readonly Fragment[]): JsonObject {
  if (fragments.length === 0) return generated;
  const { problems, normalized } = checkFragments(fragments);
  if (problems.length > 0) throw new BootstrapOverrideError(problems);
  let base: JsonObject = {};
  for (const fragment of normalized) base = mergeLayers(base, fragment).merged;
  const { merged, overwrites } = mergeLayers(base, generated);
  const lost = overwrites.map((o) =>
    o.clearedBy === undefined
      ? `${o.path}: the injector sets it (to ${show(o.top)}), which would replace the fragment's ${show(o.base)}; remove it from the fragment`
      : `${o.path}: the injector sets ${o.clearedBy} instead, which would drop the fragment's ${show(o.base)}; remove it from the fragment`,
  );
  const all = [...duplicateNames(merged), ...lost].map((p) => `${fragments.map((f) => f.source).join(' + ')}: ${p}`);
  if (all.length > 0) throw new BootstrapOverrideError(all);
  return merged;
}

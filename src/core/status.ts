// The status annotation written on injected pods and the hash of the effective proxy config.
import { createHash } from 'node:crypto';
import type { Draft } from './lens.ts';
import { FIXED_VALUES, SETTINGS, perTable, podSettings, type SettingsTable } from './settings.ts';
import type { EffectiveProxyConfig } from './types.ts';

/** What the status annotation records about an injection (SPEC.md §2). */
export interface InjectionStatus {
  readonly version: string;
  readonly initContainers: readonly string[];
  readonly containers: readonly string[];
  readonly volumes: readonly string[];
  /**
   * The annotations injection added besides this one (kubectl.kubernetes.io/default-container, set
   * only where the pod had none), so that uninject removes those and never the pod's own. Undefined
   * in a status written before it was recorded.
   */
  readonly annotations?: readonly string[];
  readonly configHash: string;
}

/**
 * Returns JSON with object keys sorted at every level, so equal values give equal text. Written out
 * rather than through a JSON.stringify replacer (which copies every object to sort it): it runs on
 * every admission, for the config hash. Like JSON.stringify, undefined members are left out.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((item) => (item === undefined ? 'null' : canonicalJson(item))).join(',')}]`;
  const members: string[] = [];
  for (const key of Object.keys(value).sort()) {
    const member = (value as Record<string, unknown>)[key];
    if (member !== undefined) members.push(`${JSON.stringify(key)}:${canonicalJson(member)}`);
  }
  return `{${members.join(',')}}`;
}

/**
 * Returns a short hash of what a pod's injected proxy is made from: the effective proxy
 * configuration and the injector version that rendered it (a new version may render the same
 * configuration differently). Pods whose hash differs from what the injector would produce today
 * carry a stale sidecar. Settings declared `hashed: false` are left out of it.
 */
export function hashProxyConfig(proxy: EffectiveProxyConfig, injectorVersion: string, table: SettingsTable = SETTINGS): string {
  return createHash('sha256').update(canonicalJson({ injectorVersion, proxy: hashedPart(proxy, table) })).digest('hex').slice(0, 16);
}

/** Whether every pod setting of a table enters the hash (then the whole config is hashed as it is). */
const allHashed = perTable((table) => podSettings(table).every((s) => s.pod?.hashed === true));

/** The part of an effective proxy config the hash covers: the fixed values and the hashed settings. */
function hashedPart(proxy: EffectiveProxyConfig, table: SettingsTable): unknown {
  if (allHashed(table)) return proxy;
  const hashed: Draft<EffectiveProxyConfig> = {};
  for (const fixed of FIXED_VALUES) fixed.at.set(hashed, fixed.at.get(proxy));
  for (const setting of podSettings(table)) {
    if (setting.pod?.hashed === true) setting.pod.at.set(hashed, setting.pod.at.get(proxy));
  }
  return hashed;
}

/** Returns the status annotation's value. */
export function renderStatus(status: InjectionStatus): string {
  return JSON.stringify({
    version: status.version,
    initContainers: status.initContainers,
    containers: status.containers,
    volumes: status.volumes,
    ...(status.annotations === undefined ? {} : { annotations: status.annotations }),
    configHash: status.configHash,
  });
}

/** Parses a status annotation, or returns undefined when it is not one this injector wrote. */
export function parseStatus(text: string): InjectionStatus | undefined {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null) return undefined;
    const v = value as Record<string, unknown>;
    const names = (x: unknown): x is string[] => Array.isArray(x) && x.every((n) => typeof n === 'string');
    if (typeof v['version'] !== 'string' || typeof v['configHash'] !== 'string') return undefined;
    if (!names(v['initContainers']) || !names(v['containers']) || !names(v['volumes'])) return undefined;
    const annotations = v['annotations'];
    if (annotations !== undefined && !names(annotations)) return undefined;
    return {
      version: v['version'],
      initContainers: v['initContainers'],
      containers: v['containers'],
      volumes: v['volumes'],
      ...(annotations === undefined ? {} : { annotations }),
      configHash: v['configHash'],
    };
  } catch {
    return undefined;
  }
}

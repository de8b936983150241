// The bootstrap of an injected pod, from what its envoy-init is told and what the pod knows: the
// files envoy-init writes, and — for `bootstrap -f` and the tests — the same read from a pod object,
// where what only the running pod knows is filled in as far as the object tells. Pure.
import { isIP } from 'node:net';
import { BOOTSTRAP_FILES, INIT_CONTAINER_NAME, OVERRIDE_KEY } from '../constants.ts';
import { layerBootstrap, type Fragment } from './bootstrap-override.ts';
import { parseFragmentText } from './fragment-text.ts';
import { adsSdsResources, DOWNWARD_ENV, formatBootstrapFile, renderPodBootstrap, type PodIdentity } from './bootstrap.ts';
import { expandEnvReferences } from './env-expansion.ts';
import { parseInitArgv, parseInitFlags, type BootstrapRequest, type InitInputs } from './init-flags.ts';
import type { PodView } from './pod.ts';
import { SETTINGS, type SettingsTable } from './settings.ts';
import { drainScript, holdScript } from './sidecar.ts';
import type { EffectiveProxyConfig, Ipv6Mode, JsonObject } from './types.ts';

/** One file envoy-init writes into its bootstrap directory. */
export interface BootstrapFile {
  readonly name: string;
  readonly content: string;
}

/** How messages name the pod's override: the ConfigMap envoy-init reads it from. */
export const podOverrideSource = (configMap: string): string => `ConfigMap ${configMap} (key ${OVERRIDE_KEY})`;

/** The fragments beneath the generated bootstrap, weakest first: the cluster's, then the pod's (its text as given). */
export function overrideFragments(proxy: EffectiveProxyConfig, podOverride: { readonly text: string; readonly source: string } | undefined): Fragment[] {
  const fragments: Fragment[] = [];
  if (proxy.bootstrapOverride !== null) fragments.push({ source: 'proxy.bootstrapOverride', value: proxy.bootstrapOverride });
  if (proxy.bootstrapOverrideConfigMap !== null) {
    // The caller reads the ConfigMap's file (envoy-init) or is given it (`bootstrap --override`).
    if (podOverride === undefined) throw new Error(`the text of ${podOverrideSource(proxy.bootstrapOverrideConfigMap)} is needed`);
    fragments.push({ source: podOverride.source, value: parseFragmentText(podOverride.text, podOverride.source) });
  }
  return fragments;
}

/**
 * Returns the bootstrap and every file envoy-init writes beside it (the classic sidecar's hooks,
 * whatever the pod: they cost nothing unused), from its flags, the pod's facts and its IPv6 — with
 * the user's fragments merged beneath it (the pod's as `podOverride`'s text, when its flags name a
 * ConfigMap). Throws BootstrapOverrideError naming every problem of the fragments.
 */
export function renderBootstrapFiles(
  inputs: InitInputs & { readonly bootstrap: BootstrapRequest },
  pod: PodIdentity,
  ipv6: boolean,
  injectorVersion: string,
  podOverride?: { readonly text: string; readonly source: string },
): { readonly bootstrap: JsonObject; readonly files: readonly BootstrapFile[] } {
  const generated = renderPodBootstrap(inputs, pod, ipv6, injectorVersion);
  const bootstrap = layerBootstrap(generated, overrideFragments(inputs.proxy, podOverride));
  return {
    bootstrap,
    files: [
      { name: BOOTSTRAP_FILES.bootstrap, content: formatBootstrapFile(bootstrap) },
      { name: BOOTSTRAP_FILES.hold, content: holdScript() },
      { name: BOOTSTRAP_FILES.drain, content: drainScript() },
      // What the ADS connection's TLS reads from the mounted ConfigMap and Secret (file-based SDS).
      ...adsSdsResources(inputs.proxy).map((r) => ({ name: r.file, content: formatBootstrapFile(r.content) })),
    ],
  };
}

/** What reading an injected pod's envoy-init tells: its inputs, or why they cannot be read. */
export type InitInputsOfPod =
  | { readonly ok: true; readonly inputs: InitInputs }
  | { readonly ok: false; readonly error: string };

/**
 * Reads the flags of the pod's envoy-init container as envoy-init parses them (after the kubelet's
 * `$(VAR)` expansion, which only turns `$$` into `$` in what the injector renders), or returns
 * undefined when the pod has no envoy-init running `init-iptables`.
 */
export function initInputsOf(pod: PodView, table: SettingsTable = SETTINGS): InitInputsOfPod | undefined {
  const init = pod.initContainers.find((c) => c.name === INIT_CONTAINER_NAME);
  const args = init?.raw['args'];
  if (!Array.isArray(args) || args[0] !== 'init-iptables') return undefined;
  if (!args.every((a): a is string => typeof a === 'string')) return { ok: false, error: 'envoy-init has an argument that is not a string' };
  let flags: Readonly<Record<string, string>>;
  try {
    flags = parseInitArgv(args.slice(1).map((a) => expandEnvReferences(a, {})), table).flags;
  } catch (error) {
    return { ok: false, error: `envoy-init's flags do not parse: ${(error as Error).message}` };
  }
  const parsed = parseInitFlags(flags, table);
  if (!parsed.ok) return { ok: false, error: `envoy-init's flags do not parse: ${parsed.error}` };
  return { ok: true, inputs: { proxy: parsed.proxy, bootstrap: parsed.bootstrap } };
}

/** How a fact only the running pod knows is shown where the pod object does not tell it: `$(VAR)`. */
export const unknownFact = (name: (typeof DOWNWARD_ENV)[number]['name']): string => `$(${name})`;

const obj = (v: unknown): Record<string, unknown> | undefined =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;

/**
 * Returns the pod's facts as far as its object tells them — name, namespace, labels, service
 * account, node and IPs once scheduled — each unknown one as `$(VAR)`, with the names of those.
 */
export function podIdentityOf(pod: PodView, namespace: string): { readonly identity: PodIdentity; readonly unknown: readonly string[] } {
  const status = obj(pod.raw['status']);
  const podIPs = Array.isArray(status?.['podIPs']) ? (status['podIPs'] as unknown[]).map((p) => obj(p)?.['ip']) : [];
  const known: Partial<Record<keyof Omit<PodIdentity, 'labels'>, string>> = {
    ...(pod.name ? { name: pod.name } : {}),
    namespace: pod.namespace ?? namespace,
    ...(typeof pod.spec['nodeName'] === 'string' && pod.spec['nodeName'] !== '' ? { nodeName: pod.spec['nodeName'] } : {}),
    // The API server's ServiceAccount admission names `default` when the pod names none.
    serviceAccount: pod.serviceAccountName || 'default',
    ...(podIPs.length > 0 && podIPs.every((ip) => typeof ip === 'string' && ip !== '') ? { instanceIps: podIPs.join(',') } : {}),
  };
  const unknown = DOWNWARD_ENV.filter((e) => known[e.field] === undefined).map((e) => e.name);
  const value = (e: (typeof DOWNWARD_ENV)[number]): string => known[e.field] ?? unknownFact(e.name);
  const [name, ns, ips, node, sa] = DOWNWARD_ENV.map(value) as [string, string, string, string, string];
  return { identity: { name, namespace: ns, instanceIps: ips, nodeName: node, serviceAccount: sa, labels: pod.labels }, unknown };
}

/**
 * Whether envoy-init would find IPv6 in the pod, as far as its object tells: `false` never; `true`
 * always (envoy-init fails in a pod without it, so whatever it writes listens on `::`); `auto` yes
 * when one of the pod's IPs is IPv6, else assumed — a kernel with IPv6 is the norm, and only the pod
 * can tell.
 */
export function expectedIpv6(mode: Ipv6Mode, instanceIps: string | undefined): { readonly ipv6: boolean; readonly assumed: boolean } {
  if (mode !== 'auto') return { ipv6: mode === 'true', assumed: false };
  const ips = instanceIps?.split(',') ?? [];
  return ips.some((ip) => isIP(ip.trim()) === 6) ? { ipv6: true, assumed: false } : { ipv6: true, assumed: true };
}

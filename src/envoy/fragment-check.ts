// A bootstrap fragment checked strictly against Envoy's v3 protos, alone (so each problem is named at
// its path in the user's file) — the check of `proxy.bootstrapOverride` at start, of the ConfigMaps
// `check` reads, and of `bootstrap --override` before the merged result is checked as a whole.
import { buildBootstrap } from '../core/bootstrap.ts';
import { BootstrapOverrideError, checkFragments, layerBootstrap } from '../core/bootstrap-override.ts';
import { builtInProxyConfig } from '../core/overrides.ts';
import type { EffectiveProxyConfig, InjectorConfig } from '../core/types.ts';
import { ConfigError } from '../errors.ts';
import { validateEnvoyMessage } from './protos.ts';
import { BOOTSTRAP_TYPE } from './validate.ts';

/** Returns every problem of the fragment `value`, each as `SOURCE: PATH: what`: the injector's own checks, then the protos'. */
export function fragmentProblems(value: unknown, source: string): string[] {
  const own = checkFragments([{ source, value }]).problems;
  if (own.length > 0) return [...own];
  const { violations } = validateEnvoyMessage(BOOTSTRAP_TYPE, value);
  return violations.map((v) => `${source}: ${v.path === '' ? '(root)' : v.path}: ${v.message}`);
}

/**
 * Returns the problems of the fragment merged beneath a generated bootstrap (the built-in proxy
 * config's, `ads` as given): what it sets that the injector's bootstrap replaces, when no pod is at hand.
 */
export function mergeProblems(value: unknown, source: string, ads: EffectiveProxyConfig['ads'] = null): string[] {
  const pod = { name: 'pod', namespace: 'ns', instanceIps: '', nodeName: '', serviceAccount: 'default', labels: {} };
  const generated = buildBootstrap({ proxy: { ...builtInProxyConfig(), ads }, pod, workloadName: 'w', injectorVersion: '', configHash: '', ipv6: true });
  try {
    layerBootstrap(generated, [{ source, value }]);
    return [];
  } catch (error) {
    if (error instanceof BootstrapOverrideError) return [...error.problems];
    throw error;
  }
}

/** Throws ConfigError when the cluster-wide fragment `proxy.bootstrapOverride` would not load in Envoy. */
export function checkClusterFragment(config: InjectorConfig): void {
  const fragment = config.proxy.bootstrapOverride;
  if (fragment === null) return;
  const problems = fragmentProblems(fragment, 'proxy.bootstrapOverride');
  if (problems.length === 0) {
    const { address, ...tls } = config.proxy.ads;
    problems.push(...mergeProblems(fragment, 'proxy.bootstrapOverride', address === null ? null : { ...tls, address }));
  }
  if (problems.length > 0) {
    throw new ConfigError('proxy.bootstrapOverride', `invalid config proxy.bootstrapOverride: Envoy would refuse it: ${problems.join('; ')}`);
  }
}

// Configuration and runtime the tests run the core with: the built-in defaults (as a fresh start
// without config file or env would give), with the version pinned so goldens do not change on
// every release.
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../../src/config.ts';
import type { InjectorConfig, InjectorRuntime } from '../../src/core/types.ts';

/** Version written into goldens instead of package.json's. */
export const TEST_VERSION = '0.0.0-test';

/** Returns the default config, with env-style overrides (ENVOY_INJECTOR_* names) applied. */
export function testConfig(env: Record<string, string> = {}): InjectorConfig {
  return loadConfig({
    env: {
      ENVOY_INJECTOR_INIT_IMAGE: `ghcr.io/envoy-injector/envoy-injector:v${TEST_VERSION}`,
      ENVOY_INJECTOR_NATIVE_SIDECAR: 'false',
      ...env,
    },
  });
}

/**
 * Returns a config loaded from YAML text (as a config file would be); classic sidecars unless the
 * YAML sets `nativeSidecar` (the environment would override the file).
 */
export function testConfigFromYaml(yaml: string, env: Record<string, string> = {}): InjectorConfig {
  const document: unknown = parseYaml(yaml);
  const setsNative = typeof document === 'object' && document !== null && 'nativeSidecar' in document;
  return loadConfig({
    file: 'test-config.yaml',
    readFile: () => yaml,
    env: {
      ENVOY_INJECTOR_INIT_IMAGE: `ghcr.io/envoy-injector/envoy-injector:v${TEST_VERSION}`,
      ...(setsNative ? {} : { ENVOY_INJECTOR_NATIVE_SIDECAR: 'false' }),
      ...env,
    },
  });
}

export const testRuntime: InjectorRuntime = { version: TEST_VERSION, nativeSidecarSupported: false };

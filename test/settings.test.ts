// The settings table (src/core/settings.ts) is the one declaration of every setting: these tests fail
// when an entry lacks a declaration, when the config or the effective proxy config holds a value no
// entry declares, or when a flag does not parse back to what it was rendered from. And a setting
// added as one entry — here a pretend one, in a table extended by it — gets a config key and env var,
// a validated pod and namespace annotation, an envoy-init flag, an explain line and README rows,
// with no other source change.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readmeSections } from '../scripts/docs.ts';
import { explainDocuments, formatExplanations } from '../src/cli/explain.ts';
import { describeConfigKeys, loadConfig } from '../src/config.ts';
import { admissionContext } from '../src/core/context.ts';
import { decide } from '../src/core/decide.ts';
import { injectPod } from '../src/core/inject.ts';
import { initFlags, parseInitFlags, renderInitFlags } from '../src/core/init-flags.ts';
import type { PathLens } from '../src/core/lens.ts';
import { builtInProxyConfig, defaultProxyConfig } from '../src/core/overrides.ts';
import { FIXED_VALUES, SETTINGS, annotationNames, defaultOf, setting, type SettingsTable } from '../src/core/settings.ts';
import type { EffectiveProxyConfig, InjectorConfig } from '../src/core/types.ts';
import type { ValueType } from '../src/core/value-types.ts';
import { ConfigError } from '../src/errors.ts';
import { OVERRIDE_SETTINGS } from './support/arbitrary-pod.ts';
import { TEST_VERSION, testConfig, testRuntime } from './support/config.ts';

const unique = (items: readonly string[]) => new Set(items).size === items.length;

test('every setting declares its key, env var, syntax, default and README text; pod settings their place and explain line', () => {
  assert.ok(unique(SETTINGS.map((s) => s.key)), 'keys are unique');
  assert.ok(unique(SETTINGS.map((s) => s.env)), 'env vars are unique');
  for (const s of SETTINGS) {
    assert.match(s.key, /^[a-z][A-Za-z0-9]*(\.[a-z][A-Za-z0-9]*)*$/, s.key);
    assert.match(s.env, /^ENVOY_INJECTOR_[A-Z0-9_]+$/, s.key);
    assert.ok(s.syntax.hint !== '', `${s.key}: a usage hint`);
    assert.match(s.doc.description, /^\S.*\.$/, `${s.key}: a README description, one sentence or more`);
    if (typeof s.default === 'function') assert.ok(s.doc.default, `${s.key}: a computed default says how it reads in the README`);
    // The default is a value of the setting's own syntax: written out, it reads back the same.
    const value = defaultOf(s, TEST_VERSION);
    const reread = s.syntax.parse(s.syntax.format(value));
    assert.ok(reread.ok, `${s.key}: its default ${JSON.stringify(value)} parses in its own syntax`);
    assert.deepEqual(reread.value, value, `${s.key}: the default reads back the same`);
    const pod = s.pod;
    if (pod === undefined) continue;
    assert.ok(pod.explain.label !== '', `${s.key}: an explain label`);
    assert.equal(typeof pod.explain.show(pod.fromConfig(value, testRuntime)), 'string', `${s.key}: explain shows its value`);
    assert.ok(pod.at.path.length > 0, `${s.key}: a place in the effective proxy config`);
    if (pod.annotation !== undefined) {
      assert.match(pod.annotation, /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/, `${s.key}: the annotation is kebab-case`);
      assert.ok((pod.accepted ?? '') !== '', `${s.key}: the README says what its annotation accepts`);
    } else assert.equal(pod.accepted, undefined, `${s.key}: accepted values only for an annotation`);
  }
  assert.ok(unique(annotationNames()), 'annotations are unique');
  assert.ok(unique(initFlags().map((f) => f.name)), 'flags are unique');
});

test('the annotations are exactly those of SPEC.md §5 (as the property model knows them)', () => {
  assert.deepEqual([...annotationNames()].sort(), [...OVERRIDE_SETTINGS].sort());
});

/** The leaf paths of a plain object (arrays and null are leaves). */
function leaves(value: unknown, prefix = ''): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [prefix];
  return Object.entries(value).flatMap(([key, child]) => leaves(child, prefix === '' ? key : `${prefix}.${key}`));
}

test('every value of the config is a setting, and every setting a value of the config', () => {
  // With an ADS address, so that `proxy.ads` is an object with its two settings.
  const config = loadConfig({ env: { ENVOY_INJECTOR_PROXY_ADS_ADDRESS: 'xds:18000' } });
  assert.deepEqual(leaves(config).sort(), SETTINGS.map((s) => s.key).sort());
  for (const s of SETTINGS) assert.notEqual(s.config.get(config), undefined, `${s.key} is read`);
});

test('every field of the effective proxy config is a setting or a fixed value, and is set', () => {
  // Written out in full, so that a field added to EffectiveProxyConfig does not compile here until
  // it is listed — and then fails below until a setting (or fixed value) fills it.
  const reference: EffectiveProxyConfig = {
    image: '',
    resources: { requests: { cpu: '', memory: '' }, limits: { cpu: '', memory: '' } },
    logLevel: 'info',
    concurrency: 0,
    nativeSidecar: false,
    holdApplicationUntilProxyStarts: false,
    drainSeconds: 0,
    captureMode: 'init',
    initImage: '',
    initResources: { requests: { cpu: '', memory: '' }, limits: { cpu: '', memory: '' } },
    imagePullPolicy: 'Always',
    accessLog: false,
    ads: { address: '', tls: false, caConfigMap: '', clientCertSecret: '' },
    mounts: [],
    bootstrapOverrideConfigMap: '',
    bootstrapOverride: null,
    traffic: {
      proxyUid: 0,
      proxyGid: 0,
      inboundCapturePort: 0,
      outboundCapturePort: 0,
      proxyPorts: [],
      includeInboundPorts: '*',
      excludeInboundPorts: [],
      excludeOutboundPorts: [],
      includeOutboundIpRanges: '*',
      excludeOutboundIpRanges: [],
      ipv6: 'auto',
    },
  };
  const built = defaultProxyConfig(loadConfig({ env: { ENVOY_INJECTOR_PROXY_ADS_ADDRESS: 'xds:18000' } }), testRuntime);
  assert.deepEqual(leaves(built).sort(), leaves(reference).sort());
  const declared = [...FIXED_VALUES.map((f) => f.at.path), ...SETTINGS.flatMap((s) => (s.pod === undefined ? [] : [s.pod.at.path]))].map((p) => p.join('.'));
  assert.deepEqual(declared.sort(), leaves(reference).sort());
});

/** Texts of the syntaxes flags use; each flag is round-tripped with every one it accepts. */
const SAMPLES = [
  '', '*', '0', '1', '80', '15006', '80,443,8080', '1337', '2147483647', '10.0.0.0/8', '10.0.0.0/8,fd00::/8', '169.254.169.254',
  'true', 'false', 'auto', 'debug', 'xds.cp.svc:18000', '[fd00::9]:15012', 'xds-ca', 'init', 'cni',
  '{"stats_flush_interval":"5s"}', '{"static_resources":{"clusters":[{"name":"collector"}]}}',
];

test('every envoy-init flag parses back to the value it was rendered from', () => {
  // With a control plane, so that its TLS choice has something to belong to.
  const base: EffectiveProxyConfig = { ...builtInProxyConfig(), ads: { address: 'xds:18000', tls: false, caConfigMap: null, clientCertSecret: null } };
  for (const flag of initFlags()) {
    const values = SAMPLES.flatMap((text) => {
      const parsed = flag.syntax.parse(text);
      return parsed.ok ? [parsed.value] : [];
    });
    assert.ok(values.length >= 2, `--${flag.name}: at least two sample values`);
    for (const value of [flag.at.get(base), ...values]) {
      const proxy = structuredClone(base) as never;
      flag.at.set(proxy, value);
      const rendered = renderInitFlags(proxy, null);
      const given = Object.fromEntries(rendered.map((arg) => /^--([^=]+)=(.*)$/s.exec(arg)?.slice(1, 3) as [string, string]));
      const parsed = parseInitFlags(given);
      assert.ok(parsed.ok, `--${flag.name}=${JSON.stringify(value)}: ${parsed.ok ? '' : parsed.error}`);
      assert.deepEqual(flag.at.get(parsed.proxy), value, `--${flag.name} round-trips ${JSON.stringify(value)}`);
      assert.deepEqual(parsed.proxy.traffic, (proxy as EffectiveProxyConfig).traffic, `--${flag.name}: the whole policy round-trips`);
      assert.deepEqual(parsed.proxy.ads, (proxy as EffectiveProxyConfig).ads, `--${flag.name}: the control plane round-trips`);
      assert.equal(parsed.proxy.accessLog, (proxy as EffectiveProxyConfig).accessLog);
    }
  }
});

test('the bootstrap flags parse back to the request they were rendered from, in any order', () => {
  const proxy: EffectiveProxyConfig = { ...builtInProxyConfig(), ads: { address: '[fd00::9]:15012', tls: true, caConfigMap: 'xds-ca', clientCertSecret: 'xds-client' }, accessLog: true };
  const request = { dir: '/etc/envoy-bootstrap', podLabelsPath: '/etc/envoy-podinfo/labels', workloadName: 'web', configHash: 'cafe0123' };
  const rendered = renderInitFlags(proxy, request);
  for (const order of [rendered, [...rendered].reverse()]) {
    const given = Object.fromEntries(order.map((arg) => /^--([^=]+)=(.*)$/s.exec(arg)?.slice(1, 3) as [string, string]));
    const parsed = parseInitFlags(given);
    assert.ok(parsed.ok, parsed.ok ? '' : parsed.error);
    assert.deepEqual(parsed.bootstrap, request);
    // The TLS choice of the control plane is applied after its address, whatever the order given.
    assert.deepEqual(parsed.proxy.ads, proxy.ads);
    assert.equal(parsed.proxy.accessLog, true);
  }
  // Without --bootstrap-dir nothing is rendered; a relative directory is refused.
  const none = parseInitFlags({ 'workload-name': 'web' });
  assert.ok(none.ok && none.bootstrap === null);
  const relative = parseInitFlags({ 'bootstrap-dir': 'etc/envoy' });
  assert.deepEqual(relative, { ok: false, error: '--bootstrap-dir="etc/envoy": expected an absolute path' });
});

// A pretend setting: interfaces whose traffic envoy-init would not capture. One entry, nothing else.
const interfaces: ValueType<readonly string[]> = {
  parse: (text) => {
    const items = text.trim() === '' ? [] : text.split(',').map((s) => s.trim());
    return items.every((i) => /^[a-z][a-z0-9]{0,14}$/.test(i)) ? { ok: true, value: items } : { ok: false, accepted: 'comma-separated interface names' };
  },
  format: (items) => items.join(','),
  hint: 'IFACE,...',
  list: true,
};
type Pretend = { traffic: { excludeInterfaces: readonly string[] } };
/** The places the pretend setting has, in config and effective config (which lack it): a test-only cast. */
function place<S>(): PathLens<S, readonly string[]> {
  return {
    path: ['traffic', 'excludeInterfaces'],
    get: (source) => (source as unknown as Pretend).traffic.excludeInterfaces,
    set: (target, value) => {
      const root = target as unknown as { traffic?: Record<string, unknown> };
      (root.traffic ??= {})['excludeInterfaces'] = value;
    },
  };
}
const PRETEND = setting({
  config: place<InjectorConfig>(),
  syntax: interfaces,
  default: [],
  doc: 'Interfaces whose traffic is never captured.',
  pod: {
    at: place<EffectiveProxyConfig>(),
    annotation: 'exclude-interfaces',
    accepted: 'comma-separated interface names',
    flag: 'exclude-interfaces',
    explain: 'interfaces not captured',
  },
});
const TABLE: SettingsTable = [...SETTINGS, PRETEND];
const pretendOf = (value: object): readonly string[] => (value as unknown as Pretend).traffic.excludeInterfaces;

test('a setting added as one table entry: config key and env var, validated annotations, flag, explain line, README rows', () => {
  // Config: its key in the file, its environment variable, its default, and a refusal naming it.
  const env = 'ENVOY_INJECTOR_TRAFFIC_EXCLUDE_INTERFACES';
  assert.ok(describeConfigKeys(TABLE).some((k) => k.key === 'traffic.excludeInterfaces' && k.env === env));
  const base = { ENVOY_INJECTOR_INIT_IMAGE: `ghcr.io/envoy-injector/envoy-injector:v${TEST_VERSION}`, ENVOY_INJECTOR_NATIVE_SIDECAR: 'false' };
  const config = loadConfig({ env: base, settings: TABLE });
  assert.deepEqual(pretendOf(config), []);
  assert.deepEqual(pretendOf(loadConfig({ env: { ...base, [env]: 'eth1,wg0' }, settings: TABLE })), ['eth1', 'wg0']);
  const file = loadConfig({ file: 'c.yaml', readFile: () => 'traffic:\n  excludeInterfaces: [eth2]\n', env: base, settings: TABLE });
  assert.deepEqual(pretendOf(file), ['eth2']);
  assert.throws(() => loadConfig({ env: { ...base, [env]: 'Not An Interface' }, settings: TABLE }), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.match(error.message, /^invalid config traffic\.excludeInterfaces="Not An Interface" \(from env ENVOY_INJECTOR_TRAFFIC_EXCLUDE_INTERFACES\): expected comma-separated interface names$/);
    return true;
  });

  // The pod annotation: it takes effect, reaches envoy-init as a flag that parses back, and is known.
  const pod = (value: string) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web', annotations: { 'envoy-injector.io/exclude-interfaces': value } },
    spec: { containers: [{ name: 'web', image: 'nginx' }] },
  });
  const ctx = admissionContext({ namespace: 'shop' });
  const result = injectPod(pod('eth1'), ctx, config, testRuntime, TABLE);
  assert.equal(result.decision.action, 'inject');
  assert.ok(result.decision.action === 'inject');
  assert.deepEqual(pretendOf(result.decision.proxy), ['eth1']);
  assert.equal(result.decision.settings.find((s) => s.setting === PRETEND)?.source, 'pod');
  assert.deepEqual(result.warnings, [], 'a known annotation, not a typo');
  const args = (result.plan?.initContainers.find((c) => c.name === 'envoy-init')?.args ?? []).slice(1);
  assert.ok(args.includes('--exclude-interfaces=eth1'), args.join(' '));
  const parsed = parseInitFlags(Object.fromEntries(args.map((a) => /^--([^=]+)=(.*)$/s.exec(a)?.slice(1, 3) as [string, string])), TABLE);
  assert.ok(parsed.ok);
  assert.deepEqual(pretendOf(parsed.proxy), ['eth1']);
  assert.notEqual(result.status?.configHash, injectPod(pod(''), ctx, config, testRuntime, TABLE).status?.configHash, 'it enters the config hash');
  // Declared `hashed: false`, it does not (and the hash of everything else stays what it was).
  const unhashed: SettingsTable = [...SETTINGS, { ...PRETEND, pod: { ...(PRETEND.pod as NonNullable<typeof PRETEND.pod>), hashed: false } }];
  const hashOf = (value: string, table: SettingsTable) => injectPod(pod(value), ctx, config, testRuntime, table).status?.configHash;
  assert.equal(hashOf('eth1', unhashed), hashOf('', unhashed));
  assert.equal(hashOf('', unhashed), injectPod({ ...pod(''), metadata: { name: 'web' } }, ctx, testConfig(), testRuntime).status?.configHash);

  // A bad value denies the pod, listing the annotation; on the namespace too, naming it.
  const denied = decide(pod('Eth 1'), ctx, config, testRuntime, TABLE).decision;
  assert.equal(denied.action, 'deny');
  assert.match(denied.reasons[0]?.message ?? '', /envoy-injector\.io\/exclude-interfaces="Eth 1" \(accepted: comma-separated interface names\)/);
  const fromNamespace = decide(
    { ...pod(''), metadata: { name: 'web' } },
    admissionContext({ namespace: 'shop', namespaceAnnotations: { 'envoy-injector.io/exclude-interfaces': 'Eth 1' } }),
    config,
    testRuntime,
    TABLE,
  ).decision;
  assert.match(fromNamespace.reasons[0]?.message ?? '', /exclude-interfaces="Eth 1" on namespace shop/);

  // explain: the override with its default, and its explain line with --show-settings.
  const manifest = 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  annotations:\n    envoy-injector.io/exclude-interfaces: eth1\nspec:\n  containers: [{ name: web, image: nginx }]\n';
  const options = { defaultNamespace: 'shop', nativeSidecarDetail: '', showSettings: true, settings: TABLE };
  const text = formatExplanations(explainDocuments(manifest, 'web.yaml', config, testRuntime, options), options);
  assert.match(text, /    envoy-injector\.io\/exclude-interfaces: "eth1" \(default none\)/);
  assert.match(text, /    interfaces not captured: eth1 \(the pod's annotation; traffic\.excludeInterfaces\)/);

  // README: a row in the annotation, config and flag tables.
  const readme = readmeSections(TABLE);
  assert.match(readme['annotations'] ?? '', /\| `exclude-interfaces` \| comma-separated interface names \| \(none\) \(`traffic\.excludeInterfaces`\) \|/);
  assert.match(readme['config'] ?? '', /\| `traffic\.excludeInterfaces` \| `ENVOY_INJECTOR_TRAFFIC_EXCLUDE_INTERFACES` \| \(none\) \| Interfaces whose traffic is never captured\./);
  assert.match(readme['init-flags'] ?? '', /\| `--exclude-interfaces=IFACE,\.\.\.` \| \(none\) \| Interfaces whose traffic is never captured\. \|/);

  // Without the entry, the same key is unknown: nothing else in the source knows it.
  assert.throws(() => loadConfig({ file: 'c.yaml', readFile: () => 'traffic:\n  excludeInterfaces: [eth2]\n', env: base }), /unknown config key traffic\.excludeInterfaces/);
  assert.deepEqual(decide(pod('eth1'), ctx, testConfig(), testRuntime).warnings.map((w) => w.code), ['unknown-annotation']);
});

test('a config-only setting may hold a YAML mapping (as proxy.bootstrapOverride will): one entry too', () => {
  type Fragment = Readonly<Record<string, unknown>>;
  const fragment: ValueType<Fragment> = {
    parse: (text) => {
      try {
        const value: unknown = JSON.parse(text);
        return typeof value === 'object' && value !== null && !Array.isArray(value) ? { ok: true, value: value as Fragment } : { ok: false, accepted: 'a mapping' };
      } catch {
        return { ok: false, accepted: 'a mapping' };
      }
    },
    format: (value) => JSON.stringify(value),
    fromYaml: (value) => (Array.isArray(value) ? { ok: false, accepted: 'a mapping' } : { ok: true, value: value as Fragment }),
    hint: 'YAML',
  };
  const at: PathLens<InjectorConfig, Fragment> = {
    path: ['proxy', 'pretendFragment'],
    get: (source) => (source.proxy as unknown as { pretendFragment: Fragment }).pretendFragment,
    set: (target, value) => {
      ((target as { proxy?: Record<string, unknown> }).proxy ??= {})['pretendFragment'] = value;
    },
  };
  const table: SettingsTable = [...SETTINGS, setting({ config: at, syntax: fragment, default: {}, doc: 'A bootstrap fragment.' })];
  const yaml = 'proxy:\n  pretendFragment:\n    stats_sinks: [{ name: envoy.stat_sinks.statsd }]\n';
  const config = loadConfig({ file: 'c.yaml', readFile: () => yaml, env: {}, settings: table });
  assert.deepEqual(at.get(config), { stats_sinks: [{ name: 'envoy.stat_sinks.statsd' }] });
  const fromEnv = loadConfig({ env: { ENVOY_INJECTOR_PROXY_PRETEND_FRAGMENT: '{"tracing":{}}' }, settings: table });
  assert.deepEqual(at.get(fromEnv), { tracing: {} });
  assert.throws(() => loadConfig({ file: 'c.yaml', readFile: () => 'proxy:\n  pretendFragment: [1]\n', env: {}, settings: table }), /expected a mapping/);
});

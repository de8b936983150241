// fast-check generators of pods and admission contexts for the property tests, and the model they
// are checked against: what SPEC.md §3–§5 and the README say must happen to each pod, worked out
// from the generated JSON independently of src/core.
//
// Pods come in two kinds: legal ones (any shape the Kubernetes API could hand the webhook,
// including odd ones: null maps, empty lists, unknown fields, names with `/` and `~`, native
// sidecars of the pod's own, every override annotation with valid and invalid values), and illegal
// ones (a legal pod with one field of the wrong type or missing), which must be denied as
// `invalid-pod` whatever else they carry.
import fc from 'fast-check';
import {
  DOMAIN,
  INIT_CONTAINER_NAME,
  INJECT_ANNOTATION,
  INJECT_LABEL,
  KUBECTL_DEFAULT_CONTAINER_ANNOTATION,
  OTHER_MESH_CONTAINERS,
  PROXY_PORTS,
  PROXY_GID,
  PROXY_UID,
  SIDECAR_CONTAINER_NAME,
  BOOTSTRAP_VOLUME_NAME,
  PODINFO_VOLUME_NAME,
  STATUS_ANNOTATION,
  XTABLES_LOCK_VOLUME_NAME,
  OVERRIDE_VOLUME_NAME,
} from '../../src/constants.ts';
import { admissionContext as contextOf } from '../../src/core/context.ts';
import type { AdmissionContext, InjectorConfig, InjectorRuntime } from '../../src/core/types.ts';
import { TEST_VERSION, testConfig } from './config.ts';

type Obj = Record<string, any>;

/** The volumes the injection adds (README "Names"): a pod of its own with one of them is refused. */
export const INJECTED_VOLUMES: readonly string[] = [XTABLES_LOCK_VOLUME_NAME, BOOTSTRAP_VOLUME_NAME, PODINFO_VOLUME_NAME, OVERRIDE_VOLUME_NAME];

// ---------------------------------------------------------------------------------------------
// Override annotation values: what each setting must accept and refuse (README "Per-pod overrides").

/** Values each override must accept, and values it must refuse. */
/**
 * The override annotations of SPEC.md §5, as this model knows them (test/settings.test.ts checks
 * that the settings table declares exactly these).
 */
export const OVERRIDE_SETTINGS = [
  'exclude-inbound-ports',
  'include-inbound-ports',
  'exclude-outbound-ports',
  'exclude-outbound-ip-ranges',
  'include-outbound-ip-ranges',
  'proxy-image',
  'proxy-cpu',
  'proxy-memory',
  'proxy-cpu-limit',
  'proxy-memory-limit',
  'log-level',
  'concurrency',
  'native-sidecar',
  'hold-application-until-proxy-starts',
  'drain-seconds',
  'ipv6',
  'proxy-mounts',
  'ads-address',
  'bootstrap-override',
] as const;
export type OverrideSetting = (typeof OVERRIDE_SETTINGS)[number];
const overrideAnnotation = (setting: OverrideSetting): string => `${DOMAIN}/${setting}`;
const KNOWN_ANNOTATIONS: readonly string[] = [INJECT_ANNOTATION, STATUS_ANNOTATION, ...OVERRIDE_SETTINGS.map(overrideAnnotation)];

export const OVERRIDE_VALUES: { readonly [S in OverrideSetting]: { readonly valid: readonly string[]; readonly invalid: readonly string[] } } = {
  'exclude-inbound-ports': { valid: ['', '8080', '80,443', ' 9090 , 9091 ', '65535', '1,1'], invalid: ['0', '65536', 'http', '80;443', '-1', '8080,', '*'] },
  'include-inbound-ports': { valid: ['*', '', '8080', '80, 8080'], invalid: ['all', '0', '*,80', '70000'] },
  'exclude-outbound-ports': { valid: ['', '5432', '3306,6379'], invalid: ['99999', 'redis', '1-100'] },
  'exclude-outbound-ip-ranges': {
    valid: ['', '10.0.0.0/8', '169.254.169.254/32,fd00::/8', '192.168.1.1', '0.0.0.0/0'],
    invalid: ['10.0.0.0/33', '300.0.0.0/8', 'fd00::/129', 'example.com', '10.0.0.0/8/1', '*', 'fe80::1%eth0'],
  },
  'include-outbound-ip-ranges': { valid: ['*', '', '10.0.0.0/8', '10.0.0.0/8, 2001:db8::/32'], invalid: ['all', '10.0.0.0/-1', '1.2.3'] },
  'proxy-image': {
    valid: ['envoyproxy/envoy:v1.30.1', 'registry.example.com:5000/team/envoy@sha256:' + 'a'.repeat(64), 'envoy', ' envoyproxy/envoy-distroless:v1.31.0 '],
    invalid: ['Envoy:Latest', '', 'a b', 'envoy:', 'registry.example.com/UPPER/envoy'],
  },
  'proxy-cpu': { valid: ['100m', '2', '0.5', '1500m', '250m'], invalid: ['100x', '-1', 'm', '', '1.2.3'] },
  'proxy-cpu-limit': { valid: ['100m', '2', '0.5', '1500m'], invalid: ['lots', '2 cores'] },
  'proxy-memory': { valid: ['64Mi', '128Mi', '1Gi', '2Gi', '512M'], invalid: ['1GB', '-5Mi', 'big', '128m'] },
  'proxy-memory-limit': { valid: ['128Mi', '1Gi', '2Gi', '512M'], invalid: ['1 Gi', 'Mi'] },
  'log-level': { valid: ['trace', 'debug', 'info', 'warning', 'warn', 'error', 'critical', 'off', 'INFO', ' debug '], invalid: ['verbose', '', 'fatal'] },
  concurrency: { valid: ['0', '2', '256', ' 4 '], invalid: ['-1', '257', 'two', '1.5', ''] },
  'native-sidecar': { valid: ['true', 'false', 'TRUE', 'False'], invalid: ['yes', '1', ''] },
  'hold-application-until-proxy-starts': { valid: ['true', 'false'], invalid: ['no', '0'] },
  'drain-seconds': { valid: ['0', '5', '3600', '45'], invalid: ['3601', '-1', '5s'] },
  ipv6: { valid: ['auto', 'true', 'false', 'TRUE', ' Auto '], invalid: ['yes', 'on', '1', '', 'dual'] },
  'proxy-mounts': {
    valid: ['', 'secret/web-tls=/etc/web/tls', 'configmap/lua=/etc/envoy-lua, secret/a.b=/var/run/a'],
    invalid: ['secret/web-tls=etc/tls', 'secret/x=/etc/envoy-bootstrap/x', 'volume/x=/x', 'secret/X=/x', 'secret/a=/x,configmap/b=/x/y', 'secret/a=/x/../y', 'secret/a=/x/'],
  },
  'ads-address': { valid: ['', 'xds.cp.svc:15012', '[fd00::20]:15012'], invalid: ['xds', 'xds:', 'xds:99999', '[fd00::20]'] },
  'bootstrap-override': { valid: ['web-envoy', 'grpc-web.v2', ''], invalid: ['Web-Envoy', 'a_b', '-x', 'envoy.yaml/'] },
};

/** Numeric values of every quantity the generators and test configs use (cores, bytes). */
const QUANTITIES: Readonly<Record<string, number>> = {
  '100m': 0.1, '250m': 0.25, '1500m': 1.5, '0.5': 0.5, '1': 1, '2': 2,
  '64Mi': 64 * 2 ** 20, '128Mi': 128 * 2 ** 20, '512M': 512e6, '1Gi': 2 ** 30, '2Gi': 2 ** 31,
};

function quantity(text: string): number {
  const value = QUANTITIES[text.trim()];
  if (value === undefined) throw new Error(`the model does not know quantity ${text}`);
  return value;
}

// ---------------------------------------------------------------------------------------------
// Configurations the core runs with: the defaults and variants that change what is injected.

/** A config with its runtime, named for failure messages. */
export interface Setup {
  readonly name: string;
  readonly config: InjectorConfig;
  readonly runtime: InjectorRuntime;
}

/** Returns the configurations the properties run under. */
export function setups(): Setup[] {
  const runtime = (nativeSidecarSupported: boolean): InjectorRuntime => ({ version: TEST_VERSION, nativeSidecarSupported });
  return [
    { name: 'defaults (classic sidecar)', config: testConfig(), runtime: runtime(false) },
    { name: 'native sidecar', config: testConfig({ ENVOY_INJECTOR_NATIVE_SIDECAR: 'true' }), runtime: runtime(true) },
    {
      name: 'auto on a 1.29+ cluster, ADS, IPv4 only, CPU limit, custom exclusions',
      config: testConfig({
        ENVOY_INJECTOR_NATIVE_SIDECAR: 'auto',
        ENVOY_INJECTOR_PROXY_ADS_ADDRESS: 'xds.mesh.svc:18000',
        ENVOY_INJECTOR_PROXY_ADS_TLS: 'true',
        ENVOY_INJECTOR_PROXY_IPV6: 'false',
        ENVOY_INJECTOR_PROXY_ACCESS_LOG: 'true',
        ENVOY_INJECTOR_PROXY_RESOURCES_LIMITS_CPU: '1',
        ENVOY_INJECTOR_EXCLUDED_NAMESPACES: 'kube-system,monitoring',
        ENVOY_INJECTOR_TRAFFIC_EXCLUDE_OUTBOUND_IP_RANGES: '169.254.169.254/32',
        ENVOY_INJECTOR_TRAFFIC_INCLUDE_INBOUND_PORTS: '8080,9090',
      }),
      runtime: runtime(true),
    },
    {
      name: 'auto on an older cluster, no hold, long drain',
      config: testConfig({
        ENVOY_INJECTOR_NATIVE_SIDECAR: 'auto',
        ENVOY_INJECTOR_PROXY_HOLD_APPLICATION_UNTIL_PROXY_STARTS: 'false',
        ENVOY_INJECTOR_PROXY_DRAIN_SECONDS: '40',
        ENVOY_INJECTOR_PROXY_RESOURCES_REQUESTS_CPU: '',
      }),
      runtime: runtime(false),
    },
    // CNI mode (SPEC.md §4c): an unprivileged envoy-init, no xtables-lock volume, --capture-mode=cni.
    { name: 'CNI mode, classic sidecar', config: testConfig({ ENVOY_INJECTOR_CAPTURE_MODE: 'cni' }), runtime: runtime(false) },
    {
      name: 'CNI mode, native sidecar, ADS with a CA ConfigMap, bootstrap override ConfigMap',
      config: testConfig({
        ENVOY_INJECTOR_CAPTURE_MODE: 'cni',
        ENVOY_INJECTOR_NATIVE_SIDECAR: 'true',
        ENVOY_INJECTOR_PROXY_ADS_ADDRESS: 'xds.mesh.svc:18000',
        ENVOY_INJECTOR_PROXY_ADS_CA_CONFIG_MAP: 'xds-ca',
        ENVOY_INJECTOR_PROXY_BOOTSTRAP_OVERRIDE_CONFIG_MAP: 'envoy-extra',
      }),
      runtime: runtime(true),
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// Generators.

const dnsLabel = fc.stringMatching(/^[a-z]([-a-z0-9]{0,8}[a-z0-9])?$/);
/** Names the webhook can meet before the API server validates them: odd characters too. */
const oddName = fc.oneof(
  fc.constantFrom('a/b', 'x~y', '~0~1', 'ünïcode', 'UPPER', 'with space', '-', '0'),
  fc.string({ minLength: 1, maxLength: 6 }),
);
const containerName = fc.oneof(
  { weight: 100, arbitrary: dnsLabel },
  { weight: 10, arbitrary: oddName },
  // Names that change the decision: already injected, or another mesh.
  { weight: 1, arbitrary: fc.constantFrom(SIDECAR_CONTAINER_NAME, INIT_CONTAINER_NAME, ...OTHER_MESH_CONTAINERS) },
);
const volumeName = fc.oneof({ weight: 30, arbitrary: dnsLabel }, { weight: 1, arbitrary: fc.constantFrom(...INJECTED_VOLUMES) }, { weight: 3, arbitrary: oddName });

/** A value the injector never reads, for unknown fields (a future API field, a CRD extension). */
const opaque = fc.oneof(
  fc.integer(),
  fc.string({ maxLength: 8 }),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.constantFrom('a', 'b', 'c/d', 'e~f'), fc.string({ maxLength: 5 }), { maxKeys: 3 }),
);
const unknownFields = fc.dictionary(fc.constantFrom('x-extension', 'futureField', 'zz'), opaque, { maxKeys: 2 });

const port = fc.oneof(
  { weight: 30, arbitrary: fc.integer({ min: 1, max: 65535 }) },
  { weight: 10, arbitrary: fc.constantFrom(80, 443, 8080, 9090, 15020, 15008) },
  // The proxy's own ports: declaring one gets the pod denied.
  { weight: 1, arbitrary: fc.constantFrom(...PROXY_PORTS) },
);
const containerPort = fc.record(
  { containerPort: port, name: dnsLabel, protocol: fc.constantFrom('TCP', 'UDP', 'SCTP'), hostPort: fc.integer({ min: 1, max: 65535 }) },
  { requiredKeys: ['containerPort'] },
);
const uid = fc.oneof({ weight: 5, arbitrary: fc.constantFrom(0, 1000, 65534) }, { weight: 2, arbitrary: fc.constant(PROXY_UID) }, { weight: 1, arbitrary: fc.constant(null) });
const securityContext = fc.record(
  { runAsUser: uid, runAsGroup: uid, runAsNonRoot: fc.boolean(), readOnlyRootFilesystem: fc.boolean(), capabilities: fc.constant({ drop: ['ALL'] }) },
  { requiredKeys: [] },
);
/** `arbitrary` once in `1 + absentWeight` cases, else undefined (left out of the JSON). */
const sometimes = <T>(arbitrary: fc.Arbitrary<T>, absentWeight: number) =>
  fc.oneof({ weight: 1, arbitrary }, { weight: absentWeight, arbitrary: fc.constant(undefined) });
const emptyOr = <T>(list: fc.Arbitrary<T[]>) =>
  fc.oneof({ weight: 6, arbitrary: list }, { weight: 1, arbitrary: fc.constant([] as T[]) }, { weight: 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constant(undefined) });

/** A container without its name (names are made unique across the pod separately). */
const containerBody = fc
  .record(
    {
      image: fc.constantFrom('nginx', 'ghcr.io/acme/app:1.2.3', 'busybox'),
      ports: emptyOr(fc.array(containerPort, { maxLength: 3 })),
      env: fc.array(fc.record({ name: dnsLabel, value: fc.string({ maxLength: 10 }) }), { maxLength: 3 }),
      args: fc.array(fc.string({ maxLength: 6 }), { maxLength: 2 }),
      resources: fc.constantFrom({}, { requests: { cpu: '50m' } }, { limits: { memory: '64Mi' } }, { limits: { cpu: '500m', memory: '64Mi' } }),
      securityContext,
      volumeMounts: fc.constant([{ name: 'data', mountPath: '/data' }]),
      unknown: unknownFields,
    },
    { requiredKeys: ['image', 'unknown'] },
  )
  .map(({ unknown, ...container }) => ({ ...unknown, ...container }));

const initContainerBody = fc
  .tuple(containerBody, fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('Always', 'OnFailure') }))
  // restartPolicy Always makes it a native sidecar of the pod's own.
  .map(([container, restartPolicy]) => (restartPolicy === undefined ? container : { ...container, restartPolicy }));

/**
 * Override annotations: a few settings at a time, all with valid values (most often, so that such
 * pods get injected and the values can be checked in the result) or each valid or invalid.
 */
const overrides = fc
  .tuple(fc.subarray([...OVERRIDE_SETTINGS], { minLength: 1, maxLength: 5 }), fc.boolean())
  .chain(([settings, allValid]) =>
    fc.tuple(
      ...settings.map((setting) => {
        const { valid, invalid } = OVERRIDE_VALUES[setting];
        const value = allValid
          ? fc.constantFrom(...valid)
          : fc.oneof({ weight: 2, arbitrary: fc.constantFrom(...valid) }, { weight: 1, arbitrary: fc.constantFrom(...invalid) });
        return value.map((v) => [overrideAnnotation(setting), v] as const);
      }),
    ),
  )
  .map((entries) => Object.fromEntries(entries) as Record<string, string>);

/** The status annotation of a classic-sidecar injection, as the generators write it. */
export const VALID_STATUS = JSON.stringify({ version: '0.0.1', initContainers: ['envoy-init'], containers: ['envoy'], volumes: [XTABLES_LOCK_VOLUME_NAME], configHash: 'abc' });
const otherAnnotations = fc.dictionary(
  fc.constantFrom('example.com/owner', 'a/b~c', 'prometheus.io/scrape', 'constructor', 'toString', `${DOMAIN}/injekt`, `${DOMAIN}/proxy-cpus`, `${DOMAIN}/nonsense`, KUBECTL_DEFAULT_CONTAINER_ANNOTATION),
  fc.string({ maxLength: 8 }),
  { maxKeys: 3 },
);
const annotations = fc
  .tuple(
    otherAnnotations,
    sometimes(overrides, 1),
    sometimes(fc.constantFrom('true', 'false', 'TRUE', ' false ', 'yes', '', 'enabled'), 4),
    sometimes(fc.constantFrom(VALID_STATUS, 'garbage'), 20),
  )
  .map(([other, overrideMap, inject, status]) => ({
    ...other,
    ...overrideMap,
    ...(inject === undefined ? {} : { [INJECT_ANNOTATION]: inject }),
    ...(status === undefined ? {} : { [STATUS_ANNOTATION]: status }),
  }));
const labels = fc
  .tuple(
    fc.dictionary(fc.constantFrom('app', 'app.kubernetes.io/name', 'k8s-app', 'name', 'version', 'team'), dnsLabel, { maxKeys: 3 }),
    sometimes(fc.constantFrom('enabled', 'disabled', 'other'), 5),
  )
  .map(([map, inject]) => (inject === undefined ? map : { ...map, [INJECT_LABEL]: inject }));

const metadata = fc.record(
  {
    name: dnsLabel,
    generateName: dnsLabel.map((n) => `${n}-`),
    namespace: fc.constantFrom('demo', 'team-a'),
    labels: fc.oneof({ weight: 5, arbitrary: labels }, { weight: 1, arbitrary: fc.constant(null) }),
    annotations: fc.oneof({ weight: 6, arbitrary: annotations }, { weight: 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constant({}) }),
    ownerReferences: fc.array(fc.record({ kind: fc.constantFrom('ReplicaSet', 'Job', 'StatefulSet'), name: dnsLabel }), { maxLength: 1 }),
    managedFields: fc.constant([{ manager: 'kubectl', operation: 'Update', fieldsV1: { 'f:spec': {} } }]),
    uid: fc.uuid(),
  },
  { requiredKeys: [] },
);

/** A legal pod. */
export const legalPod: fc.Arbitrary<Obj> = fc
  .record({
    names: fc.uniqueArray(containerName, { minLength: 1, maxLength: 7 }),
    initCount: fc.nat({ max: 3 }),
    bodies: fc.array(containerBody, { minLength: 7, maxLength: 7 }),
    initBodies: fc.array(initContainerBody, { minLength: 3, maxLength: 3 }),
    initList: fc.constantFrom('list', 'list', 'list', 'empty', 'null', 'absent'),
    volumes: emptyOr(fc.uniqueArray(volumeName, { maxLength: 3 }).map((names) => names.map((name) => ({ name, emptyDir: {} })))),
    metadata: fc.oneof({ weight: 12, arbitrary: metadata }, { weight: 1, arbitrary: fc.constant(undefined) }),
    spec: fc.record(
      {
        hostNetwork: fc.oneof({ weight: 12, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }, { weight: 2, arbitrary: fc.constant(null) }),
        // Mostly Linux; now and then a pod only Windows nodes can run (skipped: windows-pod).
        os: fc.oneof({ weight: 12, arbitrary: fc.constant({ name: 'linux' }) }, { weight: 1, arbitrary: fc.constant({ name: 'windows' }) }),
        nodeSelector: fc.constantFrom({}, { 'kubernetes.io/os': 'linux' }, { 'kubernetes.io/os': 'windows' }, { disk: 'ssd' }),
        securityContext: fc.record({ runAsUser: uid, runAsGroup: uid, fsGroup: fc.constant(2000) }, { requiredKeys: [] }),
        restartPolicy: fc.constantFrom('Always', 'Never', 'OnFailure'),
        terminationGracePeriodSeconds: fc.integer({ min: 0, max: 90 }),
        serviceAccountName: dnsLabel,
        nodeName: dnsLabel,
      },
      { requiredKeys: [] },
    ),
    unknownSpec: unknownFields,
    unknownTop: unknownFields,
    typeMeta: fc.constantFrom('full', 'full', 'absent'),
  })
  .map((g) => {
    const initCount = Math.min(g.initCount, g.names.length - 1);
    const initNames = g.names.slice(0, initCount);
    const appNames = g.names.slice(initCount);
    const containers = appNames.map((name, i) => ({ name, ...g.bodies[i] }));
    const initContainers = initNames.map((name, i) => ({ name, ...g.initBodies[i] }));
    const spec: Obj = { ...g.unknownSpec, ...g.spec, containers };
    if (g.initList === 'list') spec['initContainers'] = initContainers;
    else if (g.initList === 'empty') spec['initContainers'] = [];
    else if (g.initList === 'null') spec['initContainers'] = null;
    if (g.volumes !== undefined) spec['volumes'] = g.volumes;
    const pod: Obj = { ...g.unknownTop, ...(g.typeMeta === 'full' ? { apiVersion: 'v1', kind: 'Pod' } : {}) };
    if (g.metadata !== undefined) pod['metadata'] = g.metadata;
    pod['spec'] = spec;
    return dropUndefined(pod);
  });

function dropUndefined(value: Obj): Obj {
  return JSON.parse(JSON.stringify(value)) as Obj;
}

/** Ways a pod can be malformed: each makes the object something the core must refuse to read. */
const BREAKAGES: readonly { readonly name: string; readonly apply: (pod: Obj) => unknown }[] = [
  { name: 'the object is not an object', apply: () => ['pod'] },
  { name: 'the object is null', apply: () => null },
  { name: 'the object is a string', apply: () => 'pod' },
  { name: 'spec is missing', apply: (p) => (delete p['spec'], p) },
  { name: 'spec is a list', apply: (p) => ((p['spec'] = [p['spec']]), p) },
  { name: 'containers is missing', apply: (p) => (delete p['spec']['containers'], p) },
  { name: 'containers is empty', apply: (p) => ((p['spec']['containers'] = []), p) },
  { name: 'containers is an object', apply: (p) => ((p['spec']['containers'] = { web: {} }), p) },
  { name: 'a container is a string', apply: (p) => ((p['spec']['containers'][0] = 'web'), p) },
  { name: 'a container is null', apply: (p) => ((p['spec']['containers'][0] = null), p) },
  { name: 'a container has no name', apply: (p) => (delete p['spec']['containers'][0]['name'], p) },
  { name: 'a container name is empty', apply: (p) => ((p['spec']['containers'][0]['name'] = ''), p) },
  { name: 'a container name is a number', apply: (p) => ((p['spec']['containers'][0]['name'] = 7), p) },
  { name: 'ports is a string', apply: (p) => ((p['spec']['containers'][0]['ports'] = 'http'), p) },
  { name: 'a port is a number', apply: (p) => ((p['spec']['containers'][0]['ports'] = [8080]), p) },
  { name: 'containerPort is a string', apply: (p) => ((p['spec']['containers'][0]['ports'] = [{ containerPort: '8080' }]), p) },
  { name: 'containerPort is fractional', apply: (p) => ((p['spec']['containers'][0]['ports'] = [{ containerPort: 80.5 }]), p) },
  { name: 'containerPort is missing', apply: (p) => ((p['spec']['containers'][0]['ports'] = [{ name: 'http' }]), p) },
  { name: 'a securityContext is a string', apply: (p) => ((p['spec']['containers'][0]['securityContext'] = 'root'), p) },
  { name: 'runAsUser is a string', apply: (p) => ((p['spec']['containers'][0]['securityContext'] = { runAsUser: '1337' }), p) },
  { name: 'the pod runAsUser is fractional', apply: (p) => ((p['spec']['securityContext'] = { runAsUser: 1.5 }), p) },
  { name: 'the pod securityContext is a list', apply: (p) => ((p['spec']['securityContext'] = []), p) },
  { name: 'initContainers is an object', apply: (p) => ((p['spec']['initContainers'] = { init: {} }), p) },
  { name: 'an init container is a number', apply: (p) => ((p['spec']['initContainers'] = [1]), p) },
  { name: 'an init container has no name', apply: (p) => ((p['spec']['initContainers'] = [{ image: 'busybox' }]), p) },
  { name: 'volumes is an object', apply: (p) => ((p['spec']['volumes'] = { data: {} }), p) },
  { name: 'a volume is a string', apply: (p) => ((p['spec']['volumes'] = ['data']), p) },
  { name: 'a volume name is a number', apply: (p) => ((p['spec']['volumes'] = [{ name: 7 }]), p) },
  { name: 'metadata is a string', apply: (p) => ((p['metadata'] = 'web'), p) },
  { name: 'annotations is a list', apply: (p) => ((p['metadata'] = { ...p['metadata'], annotations: ['a=b'] }), p) },
  {
    name: 'an annotation value is not a string',
   
    apply: (p) => ((p['metadata'] = { ...p['metadata'], annotations: { ...p['metadata']?.['annotations'], [INJECT_ANNOTATION]: true } }), p),
  },
  { name: 'an annotation value is null', apply: (p) => ((p['metadata'] = { ...p['metadata'], annotations: { note: null } }), p) },
  { name: 'a label value is a number', apply: (p) => ((p['metadata'] = { ...p['metadata'], labels: { app: 5 } }), p) },
  { name: 'hostNetwork is a string', apply: (p) => ((p['spec']['hostNetwork'] = 'true'), p) },
  { name: 'restartPolicy is a number', apply: (p) => ((p['spec']['restartPolicy'] = 1), p) },
  { name: 'terminationGracePeriodSeconds is a string', apply: (p) => ((p['spec']['terminationGracePeriodSeconds'] = '30'), p) },
  { name: 'ownerReferences is an object', apply: (p) => ((p['metadata'] = { ...p['metadata'], ownerReferences: { kind: 'Job' } }), p) },
  { name: 'serviceAccountName is a number', apply: (p) => ((p['spec']['serviceAccountName'] = 5), p) },
  { name: 'metadata.name is a number', apply: (p) => ((p['metadata'] = { ...p['metadata'], name: 5 }), p) },
  { name: 'metadata.generateName is a list', apply: (p) => ((p['metadata'] = { ...p['metadata'], generateName: [] }), p) },
];

/** A generated pod: the object given to the core, and how it was broken, if it was. */
export interface GeneratedPod {
  readonly object: unknown;
  /** Name of the breakage applied, for illegal pods. */
  readonly breakage?: string;
}

/** A legal pod (7 in 8) or a legal pod broken in one place. */
export const anyPod: fc.Arbitrary<GeneratedPod> = fc.oneof(
  { weight: 7, arbitrary: legalPod.map((object) => ({ object })) },
  {
    weight: 1,
    arbitrary: fc.tuple(legalPod, fc.constantFrom(...BREAKAGES)).map(([pod, breakage]) => ({
      object: breakage.apply(structuredClone(pod)),
      breakage: breakage.name,
    })),
  },
);

/** An admission context: mostly a pod creation in an ordinary namespace. */
export function admissionContext(config: InjectorConfig): fc.Arbitrary<AdmissionContext> {
  return fc
    .record(
      {
        kind: fc.oneof({ weight: 40, arbitrary: fc.constant('Pod') }, { weight: 1, arbitrary: fc.constantFrom('Deployment', 'Pod.example.com', '') }),
        operation: fc.oneof({ weight: 40, arbitrary: fc.constant('CREATE') }, { weight: 1, arbitrary: fc.constantFrom('UPDATE', 'DELETE', 'CONNECT') }),
        namespace: fc.oneof(
          { weight: 25, arbitrary: fc.constantFrom('demo', 'team-a', '') },
          { weight: 1, arbitrary: fc.constantFrom(config.namespace, ...config.excludedNamespaces) },
        ),
        subResource: fc.oneof({ weight: 40, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('ephemeralcontainers', 'status') }),
        namespaceLabels: fc.oneof(
          { weight: 12, arbitrary: fc.constant(undefined) },
          { weight: 1, arbitrary: fc.constantFrom({ [INJECT_LABEL]: 'enabled' }, { [INJECT_LABEL]: 'disabled' }, {}, { [INJECT_LABEL]: 'other' }) },
        ),
        workloadKind: fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('Job', 'CronJob', 'Deployment') }),
      },
      { requiredKeys: ['kind', 'operation', 'namespace'] },
    )
    .map((facts) => contextOf(facts));
}

// ---------------------------------------------------------------------------------------------
// The model.

/** The settings of the proxy a pod should get: config defaults with its valid overrides. */
export interface ExpectedProxy {
  readonly image: string;
  readonly logLevel: string;
  readonly concurrency: number;
  readonly nativeSidecar: boolean;
  readonly hold: boolean;
  readonly drainSeconds: number;
  /** Where envoy mounts the `proxy-mounts` volumes, in order. */
  readonly mountPaths: readonly string[];
  readonly requests: { cpu?: string; memory?: string };
  readonly limits: { cpu?: string; memory?: string };
  readonly traffic: Readonly<Record<string, string>>;
}

/** What the model says must happen to a pod. */
export interface Expectation {
  readonly action: 'inject' | 'skip' | 'deny' | 'reorder';
  readonly reasons: readonly string[];
  /** Warning codes, in any order. */
  readonly warnings: readonly string[];
  /** Override annotations with invalid values (named in the denial). */
  readonly invalidAnnotations: readonly string[];
  readonly proxy?: ExpectedProxy;
}

const has = (o: Obj | null | undefined, key: string): boolean => o !== null && o !== undefined && Object.hasOwn(o, key);
const list = (text: string): string => {
  const items = text.trim() === '' ? [] : text.split(',').map((s) => s.trim());
  return [...new Set(items)].join(',');
};

/** Works out from the generated JSON what the injector must do with it (SPEC.md §3–§5). */
export function expectOutcome(generated: GeneratedPod, ctx: AdmissionContext, setup: Setup): Expectation {
  const { config, runtime } = setup;
  const none = { warnings: [], invalidAnnotations: [] };
  if (ctx.kind !== 'Pod') return { action: 'skip', reasons: ['not-a-pod'], ...none };
  if (ctx.subResource !== undefined) return { action: 'skip', reasons: ['subresource'], ...none };
  if (ctx.operation !== 'CREATE') return { action: 'skip', reasons: ['not-create'], ...none };
  if (generated.breakage !== undefined) return { action: 'deny', reasons: ['invalid-pod'], ...none };

  const pod = generated.object as Obj;
  const annotations: Record<string, string> = pod['metadata']?.['annotations'] ?? {};
  const podLabels: Record<string, string> = pod['metadata']?.['labels'] ?? {};
  const containers: Obj[] = pod['spec']['containers'];
  const initContainers: Obj[] = pod['spec']['initContainers'] ?? [];
  const all = [...initContainers, ...containers];
  const names = all.map((c) => c['name'] as string);
  const warnings: string[] = Object.keys(annotations)
    .filter((key) => key.startsWith(`${DOMAIN}/`) && !KNOWN_ANNOTATIONS.includes(key))
    .map(() => 'unknown-annotation');

  const skips: string[] = [];
  if (config.excludedNamespaces.includes(ctx.namespace) || ctx.namespace === config.namespace) skips.push('namespace-excluded');
  const podLabel = podLabels[INJECT_LABEL];
  if (ctx.namespaceLabels !== undefined) {
    const namespaceLabel = ctx.namespaceLabels[INJECT_LABEL];
    if (namespaceLabel === 'disabled') skips.push('namespace-disabled');
    else if (namespaceLabel !== 'enabled' && podLabel !== 'enabled') skips.push('namespace-not-enabled');
  }
  if (has(annotations, INJECT_ANNOTATION)) {
    const value = annotations[INJECT_ANNOTATION]!.trim().toLowerCase();
    if (value === 'false') skips.push('disabled-by-annotation');
    else if (value !== 'true') skips.push('invalid-inject-annotation');
  }
  if (podLabel === 'disabled') skips.push('disabled-by-pod-label');
  if (pod['spec']['hostNetwork'] === true) skips.push('host-network');
  if (pod['spec']['os']?.['name'] === 'windows' || pod['spec']['nodeSelector']?.['kubernetes.io/os'] === 'windows') skips.push('windows-pod');
  if (has(annotations, STATUS_ANNOTATION) || names.includes(SIDECAR_CONTAINER_NAME) || names.includes(INIT_CONTAINER_NAME)) {
    skips.push('already-injected');
  }
  if (names.some((n) => OTHER_MESH_CONTAINERS.includes(n))) skips.push('other-mesh-present');
  // Re-invocation (SPEC.md §3): a pod of ours — its status annotation valid, and the generated one
  // says a classic sidecar — whose envoy-init has init containers after it gets envoy-init moved last.
  if (skips[0] === 'already-injected' && annotations[STATUS_ANNOTATION] === VALID_STATUS) {
    const initNames = initContainers.map((c) => c['name'] as string);
    const at = initNames.indexOf(INIT_CONTAINER_NAME);
    if (at !== -1 && at !== initNames.length - 1) return { action: 'reorder', reasons: ['envoy-init-not-last'], warnings, invalidAnnotations: [] };
  }
  if (skips.length > 0) {
    // Only the deciding (first) reason can warn, and only where the user would not expect the skip.
    const first = skips[0]!;
    const injectValue = has(annotations, INJECT_ANNOTATION) ? annotations[INJECT_ANNOTATION]!.trim().toLowerCase() : undefined;
    const optsIn = podLabel === 'enabled' || injectValue === 'true';
    if (['host-network', 'windows-pod', 'invalid-inject-annotation', 'other-mesh-present'].includes(first)) warnings.unshift(first);
    if (first === 'namespace-excluded' && optsIn) warnings.unshift('namespace-excluded');
    if (first === 'already-injected' && !has(annotations, STATUS_ANNOTATION)) warnings.unshift('container-name-taken');
    return { action: 'skip', reasons: skips, warnings, invalidAnnotations: [] };
  }

  // Overrides: the valid ones apply, the invalid ones are listed.
  const invalidAnnotations: string[] = [];
  const valid = (setting: OverrideSetting): string | undefined => {
    const key = overrideAnnotation(setting);
    if (!has(annotations, key)) return undefined;
    const value = annotations[key]!;
    if (OVERRIDE_VALUES[setting].valid.includes(value)) return value;
    if (!OVERRIDE_VALUES[setting].invalid.includes(value)) throw new Error(`the model does not know ${key}=${value}`);
    invalidAnnotations.push(key);
    return undefined;
  };
  const given = Object.fromEntries(OVERRIDE_SETTINGS.map((setting) => [setting, valid(setting)])) as Record<OverrideSetting, string | undefined>;
  const nativeDefault = config.nativeSidecar === 'auto' ? runtime.nativeSidecarSupported : config.nativeSidecar === 'true';
  const bool = (text: string | undefined, fallback: boolean) => (text === undefined ? fallback : text.trim().toLowerCase() === 'true');
  const num = (text: string | undefined, fallback: number) => (text === undefined ? fallback : Number(text.trim()));
  const logLevel = given['log-level']?.trim().toLowerCase();
  const requests = { ...config.proxy.resources.requests };
  const limits = { ...config.proxy.resources.limits };
  const set = (target: { cpu?: string; memory?: string }, key: 'cpu' | 'memory', value: string | undefined) => {
    if (value !== undefined) target[key] = value.trim();
  };
  set(requests, 'cpu', given['proxy-cpu']);
  set(requests, 'memory', given['proxy-memory']);
  set(limits, 'cpu', given['proxy-cpu-limit']);
  set(limits, 'memory', given['proxy-memory-limit']);
  const traffic: Record<string, string> = {};
  const flag = (setting: OverrideSetting, name: string, fallback: readonly (number | string)[] | '*') => {
    const value = given[setting];
    traffic[name] = value === undefined ? (fallback === '*' ? '*' : fallback.join(',')) : value.trim() === '*' ? '*' : list(value);
  };
  flag('exclude-inbound-ports', 'exclude-inbound-ports', config.traffic.excludeInboundPorts);
  flag('include-inbound-ports', 'include-inbound-ports', config.traffic.includeInboundPorts);
  flag('exclude-outbound-ports', 'exclude-outbound-ports', config.traffic.excludeOutboundPorts);
  flag('exclude-outbound-ip-ranges', 'exclude-outbound-ip-ranges', config.traffic.excludeOutboundIpRanges);
  flag('include-outbound-ip-ranges', 'include-outbound-ip-ranges', config.traffic.includeOutboundIpRanges);
  traffic['ipv6'] = given['ipv6']?.trim().toLowerCase() ?? config.proxy.ipv6;
  const proxy: ExpectedProxy = {
    image: given['proxy-image']?.trim() ?? config.proxy.image,
    logLevel: logLevel === undefined ? config.proxy.logLevel : logLevel === 'warn' ? 'warning' : logLevel,
    concurrency: num(given['concurrency'], config.proxy.concurrency),
    nativeSidecar: bool(given['native-sidecar'], nativeDefault),
    hold: bool(given['hold-application-until-proxy-starts'], config.proxy.holdApplicationUntilProxyStarts),
    drainSeconds: num(given['drain-seconds'], config.proxy.drainSeconds),
    mountPaths: (given['proxy-mounts'] ?? '').split(',').filter((item) => item.trim() !== '').map((item) => item.trim().split('=')[1] ?? ''),
    requests,
    limits,
    traffic,
  };
  // A request above its limit would be refused by the API server.
  for (const resource of ['cpu', 'memory'] as const) {
    const request = requests[resource];
    const limit = limits[resource];
    if (request !== undefined && limit !== undefined && quantity(request) > quantity(limit)) {
      const requestKey = overrideAnnotation(resource === 'cpu' ? 'proxy-cpu' : 'proxy-memory');
      const limitKey = overrideAnnotation(resource === 'cpu' ? 'proxy-cpu-limit' : 'proxy-memory-limit');
      invalidAnnotations.push(given[resource === 'cpu' ? 'proxy-cpu' : 'proxy-memory'] !== undefined ? requestKey : limitKey);
    }
  }

  const denials: string[] = [];
  if (invalidAnnotations.length > 0) denials.push('invalid-annotations');
  // TCP ports of what runs beside the proxy: app containers, the pod's own native sidecars, and
  // with a native proxy (started first, when every annotation is valid) all init containers.
  const nativeProxy = invalidAnnotations.length === 0 && proxy.nativeSidecar;
  const running = [...initContainers.filter((c) => nativeProxy || c['restartPolicy'] === 'Always'), ...containers];
  const declared = running.flatMap((c) =>
    ((c['ports'] ?? []) as Obj[]).filter((p) => (p['protocol'] ?? 'TCP') === 'TCP').map((p) => p['containerPort'] as number),
  );
  if (declared.some((p) => PROXY_PORTS.includes(p))) denials.push('proxy-port-conflict');
  const volumes: Obj[] = pod['spec']['volumes'] ?? [];
  if (volumes.some((v) => INJECTED_VOLUMES.includes(v['name']))) denials.push('name-conflict');
  if (denials.length > 0) return { action: 'deny', reasons: denials, warnings, invalidAnnotations };

  const reasons: string[] = [];
  const namespaceLabel = ctx.namespaceLabels?.[INJECT_LABEL];
  if (namespaceLabel === 'enabled' || (namespaceLabel === undefined && podLabel !== 'enabled')) reasons.push('enabled-by-namespace');
  if (podLabel === 'enabled') reasons.push('enabled-by-pod-label');
  if (has(annotations, INJECT_ANNOTATION)) reasons.push('enabled-by-annotation');

  // `auto` found no native sidecar support, yet the pod's annotation asks for one.
  if (proxy.nativeSidecar && config.nativeSidecar === 'auto' && !runtime.nativeSidecarSupported) warnings.push('native-sidecar-unsupported');
  // The capture exempts the proxy's UID and GID: one warning per container running as either.
  const podUid = pod['spec']['securityContext']?.['runAsUser'];
  const podGid = pod['spec']['securityContext']?.['runAsGroup'];
  const checked = proxy.nativeSidecar ? all : containers;
  for (const c of checked) {
    const runsAsProxy =
      (c['securityContext']?.['runAsUser'] ?? podUid) === PROXY_UID || (c['securityContext']?.['runAsGroup'] ?? podGid) === PROXY_GID;
    if (runsAsProxy) warnings.push('proxy-uid-container');
  }
  const owners: Obj[] = pod['metadata']?.['ownerReferences'] ?? [];
  const completes =
    ctx.workloadKind === 'Job' ||
    ctx.workloadKind === 'CronJob' ||
    owners.some((o) => o['kind'] === 'Job') ||
    ['Never', 'OnFailure'].includes(pod['spec']['restartPolicy']);
  if (!proxy.nativeSidecar && completes) warnings.push('pod-will-not-complete');
  // Guaranteed QoS (every container at requests = limits, both CPU and memory) is lost unless the
  // injected containers match: with the test configs they never do.
  const guaranteed = (c: Obj) => {
    const limits = c['resources']?.['limits'] ?? {};
    const requests = c['resources']?.['requests'] ?? {};
    return ['cpu', 'memory'].every((r) => limits[r] !== undefined && (requests[r] ?? limits[r]) === limits[r]);
  };
  if (all.every(guaranteed)) warnings.push('qos-downgraded');
  if (!proxy.nativeSidecar && proxy.drainSeconds >= (pod['spec']['terminationGracePeriodSeconds'] ?? 30)) warnings.push('drain-exceeds-grace-period');
  return { action: 'inject', reasons, warnings, invalidAnnotations: [], proxy };
}

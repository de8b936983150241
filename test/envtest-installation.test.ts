// The installation against real kube-apiservers (KUBEBUILDER_ASSETS; once per version):
//  - `kubectl apply --dry-run=server -k manifests/` is accepted, and manifests/ applied for real is
//    stored as written (no field silently dropped, but for the documented exceptions);
//  - the manifests' ServiceAccount and RBAC, for real: a TokenRequest token of that ServiceAccount,
//    and `kubectl auth can-i --list` as it shows exactly SPEC §7's grants on top of what every
//    authenticated client may do;
//  - tls.mode secret with that token: three replicas started at once converge on one Secret and one
//    caBundle; every replica serves a certificate the caBundle trusts (a real TLS handshake by the
//    Service's name); the API server itself calls the webhook through the Service with that
//    caBundle; a serving certificate near its expiry is renewed under the same CA; deleting the
//    Secret resets the CA, with the old one trusted until the grace ends and dropped after it;
//  - `envoy-injector check` against it: webhook, caBundle, endpoints, labelled namespaces (and their
//    Pod Security level), a pod created before the webhook existed (not injected) and one injected
//    with another config (stale).
//
// The cluster has no kube-proxy: the Service's cluster IP (in 127.0.0.0/8, see envtest.ts) is bound by
// the first replica itself, on a high port the Service and the webhook configuration name instead of
// 443, so the API server reaches it the way it reaches a Service in a cluster (by cluster IP, with the
// Service's DNS name as TLS server name). No endpoints controller runs: the test writes the
// EndpointSlice check reads, with documentation addresses (192.0.2.0/24) nothing ever dials.
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { after, before, test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { parseAllDocuments, stringify as stringifyYaml } from 'yaml';
import { run as runCheckCommand } from '../src/cli/check.ts';
import { loadConfig } from '../src/config.ts';
import { INJECT_ANNOTATION, INJECT_LABEL, STATUS_ANNOTATION } from '../src/constants.ts';
import { admissionContext } from '../src/core/context.ts';
import { injectPod } from '../src/core/inject.ts';
import type { InjectorConfig, InjectorRuntime } from '../src/core/types.ts';
import { detectNativeSidecarSupport } from '../src/kube/version.ts';
import { createNamespaceApi, NamespaceCache } from '../src/kube/namespace-cache.ts';
import { startInjector, type RunningInjector } from '../src/serve.ts';
import { generateServingCert, splitPemCertificates } from '../src/tls/certificates.ts';
import { carryGraceMs } from '../src/tls/secret-source.ts';
import { runtimeFor } from '../src/runtime.ts';
import { childEnv, describeApiServers, freePorts, waitFor } from './support/envtest.ts';
import { captureLogger } from './support/fake-apiserver-cluster.ts';

type Obj = Record<string, any>;

const ROOT = new URL('..', import.meta.url).pathname;
const MANIFESTS = join(ROOT, 'manifests');
const ISSUER = 'https://kubernetes.default.svc.cluster.local';

/** What SPEC §7 (and the README's table) allow the injector's ServiceAccount, and nothing more. */
const SPEC_GRANTS = [
  { namespace: 'envoy-injector', resource: 'secrets', names: ['envoy-injector-tls'], verbs: ['get', 'update'] },
  // RBAC cannot limit create by name (rbac.yaml says why); a namespaced Role keeps it to its namespace.
  { namespace: 'envoy-injector', resource: 'secrets', names: [], verbs: ['create'] },
  { namespace: undefined, resource: 'mutatingwebhookconfigurations.admissionregistration.k8s.io', names: ['envoy-injector'], verbs: ['get', 'update'] },
  // nativeSidecar: auto reads the kubelets' versions.
  { namespace: undefined, resource: 'nodes', names: [], verbs: ['list'] },
  // The namespace watch cache (namespace defaults, SPEC.md §4b).
  { namespace: undefined, resource: 'namespaces', names: [], verbs: ['get', 'list', 'watch'] },
];

/**
 * Fields of manifests/ an API server older than the feature stores without (it drops fields of
 * features that are off): a PodDisruptionBudget's unhealthyPodEvictionPolicy is alpha, off by
 * default, before 1.27 (beta, on, from 1.27).
 */
const DROPPED_BEFORE = [{ object: 'PodDisruptionBudget/envoy-injector', field: 'spec.unhealthyPodEvictionPolicy', minor: 27 }];

/** Splits `kubectl auth can-i --list`'s table into rows by its header's columns. */
export function parseCanIList(text: string): { resource: string; nonResourceUrls: string; names: string; verbs: string }[] {
  const [header, ...lines] = text.split('\n').filter((l) => l.trim() !== '');
  assert.ok(header !== undefined && /^Resources\s+Non-Resource URLs\s+Resource Names\s+Verbs/.test(header), `a can-i table: ${text}`);
  const starts = ['Resources', 'Non-Resource URLs', 'Resource Names', 'Verbs'].map((h) => header.indexOf(h));
  const cell = (line: string, i: number) => line.slice(starts[i], i + 1 < starts.length ? starts[i + 1] : undefined).trim();
  const list = (text: string) => text.replace(/^\[|\]$/g, '').split(' ').filter(Boolean).sort().join(' ');
  return lines.map((line) => ({ resource: cell(line, 0), nonResourceUrls: list(cell(line, 1)), names: list(cell(line, 2)), verbs: list(cell(line, 3)) }));
}

const rowKey = (row: { resource: string; nonResourceUrls: string; names: string; verbs: string }) => JSON.stringify([row.resource, row.nonResourceUrls, row.names, row.verbs]);

/** Connects with TLS to host:port trusting only `ca`, as the API server calls the Service; resolves with the certificate served. */
function handshake(host: string, port: number, ca: string, servername: string): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, ca, servername, timeout: 10_000 }, () => {
      const peer = socket.getPeerX509Certificate();
      socket.end();
      if (peer === undefined) reject(new Error('no certificate'));
      else resolve(peer);
    });
    socket.on('timeout', () => socket.destroy(new Error(`TLS to ${host}:${port}: no answer`)));
    socket.on('error', reject);
  });
}

/** Runs `envoy-injector check` in this process (the command's own entry point); returns its exit code and output. */
async function checkInProcess(args: readonly string[]): Promise<{ code: number; stdout: string }> {
  let stdout = '';
  const code = await runCheckCommand([...args], { write: (text: string | Uint8Array) => ((stdout += String(text)), true) });
  return { code, stdout };
}

/** Runs `envoy-injector check` (src/main.ts through tsx) and returns its exit code and output. */
function runCheck(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/main.ts'), 'check', ...args], { cwd: ROOT, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const decode = (value: string | undefined) => Buffer.from(value ?? '', 'base64').toString('utf8');

describeApiServers('installation: manifests/, RBAC, tls.mode secret with three replicas, and check, on a real API server', {}, (api, assets) => {
  let dir = '';
  let rendered: Obj[] = [];
  let saKubeconfig = '';
  let clusterIp = '';
  let port = 0;
  let config: InjectorConfig;
  let runtime: InjectorRuntime;
  let offsetMs = 0;
  const now = () => new Date(Date.now() + offsetMs);
  const replicas: RunningInjector[] = [];
  const logs: ReturnType<typeof captureLogger>[] = [];
  const NS = 'envoy-injector';
  const SECRET = 'envoy-injector-tls';
  const MWC = 'envoy-injector';
  const SERVICE_HOST = `envoy-injector.${NS}.svc`;

  const byKind = (...kinds: string[]) => rendered.filter((o) => kinds.includes(o['kind']));
  const apply = async (objects: Obj[]) => {
    const result = await api().kubectl(['apply', '-f', '-'], { input: objects.map((o) => stringifyYaml(o)).join('---\n') });
    assert.equal(result.code, 0, `kubectl apply: ${result.stderr}`);
    return result.stdout;
  };
  const secret = async (): Promise<Obj | undefined> => {
    const response = await api().request('GET', `/api/v1/namespaces/${NS}/secrets/${SECRET}`);
    return response.status === 200 ? response.body : undefined;
  };
  const caBundles = async () =>
    ((await api().ok('GET', `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${MWC}`)).webhooks as Obj[]).map((w) => decode(w['clientConfig'].caBundle));
  /** Every replica ready, all serving the Secret's certificate, every caBundle the Secret's ca.crt. */
  const converged = async () => {
    const current = await secret();
    if (current === undefined || !replicas.every((r) => r.tls.readiness().ready)) return false;
    const cert = decode(current['data']['tls.crt']);
    const bundles = await caBundles();
    return replicas.every((r) => r.tls.current()?.cert === cert) && bundles.every((b) => b === decode(current['data']['ca.crt'])) ? current : false;
  };
  const replicaLogs = () => logs.flatMap((l) => l.lines.slice(-5)).map((l) => JSON.stringify(l)).join('\n');
  /** Creates a pod in a labelled namespace: the API server calls the webhook through the Service. */
  const createPod = async (namespace: string, name: string) =>
    api().request('POST', `/api/v1/namespaces/${namespace}/pods`, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, labels: { app: name } },
      spec: { containers: [{ name: 'app', image: 'registry.example/app:1', ports: [{ containerPort: 8080 }] }] },
    });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'envtest-installation-'));
    const kustomize = await api().kubectl(['kustomize', MANIFESTS]);
    assert.equal(kustomize.code, 0, `kubectl kustomize: ${kustomize.stderr}`);
    rendered = parseAllDocuments(kustomize.stdout).map((d) => d.toJS() as Obj);
  });

  after(async () => {
    await Promise.all(replicas.map((r) => r.close()));
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  test('kubectl apply --dry-run=server -k manifests/ is accepted, and nothing is stored', async () => {
    // A server dry run creates nothing, so on a fresh cluster the namespaced objects would name a
    // namespace that does not exist yet: create it first, as the real apply does.
    await apply(byKind('Namespace'));
    const result = await api().kubectl(['apply', '--dry-run=server', '-k', MANIFESTS]);
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trim().split('\n');
    assert.equal(lines.length, rendered.length, result.stdout);
    for (const line of lines) assert.match(line, /(created|configured|unchanged) \(server dry run\)$/);
    assert.equal((await api().request('GET', `/apis/apps/v1/namespaces/${NS}/deployments/envoy-injector`)).status, 404, 'a dry run stores nothing');
  });

  test('the ServiceAccount and RBAC of manifests/ applied for real; a TokenRequest token for it', async () => {
    await apply(byKind('ServiceAccount', 'Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding'));
    const token = await api().ok('POST', `/api/v1/namespaces/${NS}/serviceaccounts/envoy-injector/token`, {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { audiences: [ISSUER], expirationSeconds: 3600 },
    });
    assert.equal(typeof token.status.token, 'string');
    saKubeconfig = api().writeKubeconfig('envoy-injector-sa', token.status.token);
    const whoami = await api().request('POST', '/apis/authorization.k8s.io/v1/selfsubjectrulesreviews', { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectRulesReview', spec: { namespace: NS } }, { token: token.status.token });
    assert.equal(whoami.status, 201, JSON.stringify(whoami.body));
  });

  test('kubectl auth can-i --list as that ServiceAccount: exactly SPEC §7 on top of what every client may do', async () => {
    // What any authenticated client may do, from a ServiceAccount bound to nothing.
    await api().ensureServiceAccount(NS, 'nobody');
    const nobodyToken = (await api().ok('POST', `/api/v1/namespaces/${NS}/serviceaccounts/nobody/token`, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { audiences: [ISSUER] } })).status.token;
    const nobody = api().writeKubeconfig('nobody', nobodyToken);
    // The grants as rbac.yaml writes them must be SPEC §7's.
    const rules: Obj[] = [
      ...byKind('Role').flatMap((r) => (r['rules'] as Obj[]).map((rule) => ({ ...rule, namespace: r['metadata'].namespace as string | undefined }))),
      ...byKind('ClusterRole').flatMap((r) => (r['rules'] as Obj[]).map((rule) => ({ ...rule, namespace: undefined }))),
    ];
    const granted = rules.flatMap((rule) =>
      (rule['resources'] as string[]).flatMap((resource) =>
        (rule['apiGroups'] as string[]).map((group) => ({
          namespace: rule['namespace'] as string | undefined,
          resource: group === '' ? resource : `${resource}.${group}`,
          names: [...((rule['resourceNames'] as string[] | undefined) ?? [])].sort(),
          verbs: [...(rule['verbs'] as string[])].sort(),
        })),
      ),
    );
    const spec = SPEC_GRANTS.map((g) => ({ ...g, names: [...g.names].sort(), verbs: [...g.verbs].sort() }));
    const sortKey = (g: { resource: string; names: string[]; verbs: string[] }) => JSON.stringify([g.resource, g.names, g.verbs]);
    assert.deepEqual([...granted].sort((a, b) => sortKey(a).localeCompare(sortKey(b))), [...spec].sort((a, b) => sortKey(a).localeCompare(sortKey(b))));

    for (const namespace of [NS, 'default']) {
      const list = async (kubeconfig: string) => {
        const result = await api().kubectl(['auth', 'can-i', '--list', '-n', namespace], { kubeconfig });
        assert.equal(result.code, 0, result.stderr);
        return parseCanIList(result.stdout);
      };
      const baseline = new Set((await list(nobody)).map(rowKey));
      const expected = new Set([
        ...baseline,
        ...spec.filter((g) => g.namespace === undefined || g.namespace === namespace).map((g) => rowKey({ resource: g.resource, nonResourceUrls: '', names: g.names.join(' '), verbs: g.verbs.join(' ') })),
      ]);
      const actual = new Set((await list(saKubeconfig)).map(rowKey));
      assert.deepEqual([...actual].sort(), [...expected].sort(), `can-i --list -n ${namespace}`);
    }
    // And what it must not do, asked one by one.
    for (const args of [['get', 'secrets'], ['list', 'secrets'], ['get', 'secrets/other'], ['delete', `secrets/${SECRET}`], ['watch', 'nodes'], ['get', 'pods'], ['update', 'namespaces/default'], ['delete', 'namespaces/default'], ['update', 'mutatingwebhookconfigurations/other']]) {
      const result = await api().kubectl(['auth', 'can-i', ...args, '-n', NS], { kubeconfig: saKubeconfig });
      assert.equal(result.stdout.trim(), 'no', `can-i ${args.join(' ')}`);
    }
  });

  test('a pod created before the webhook is installed stays without the proxy', async () => {
    await api().createNamespace('apps', { [INJECT_LABEL]: 'enabled' });
    await api().createNamespace('locked', { [INJECT_LABEL]: 'enabled', 'pod-security.kubernetes.io/enforce': 'restricted' });
    const response = await createPod('apps', 'early');
    assert.equal(response.status, 201, response.body?.message);
    assert.equal(response.body.metadata.annotations?.[STATUS_ANNOTATION], undefined);
  });

  test('the rest of manifests/ applied for real is stored as written', async () => {
    // The Service's cluster IP is the first replica's address; a high port stands in for 443.
    const service = structuredClone(byKind('Service')[0] as Obj);
    const servicePorts = service['spec'].ports as Obj[];
    assert.equal(servicePorts.length, 1);
    // A cluster IP of the Service range (on loopback) and a port free on it.
    clusterIp = `127.${api().serviceClusterIpRange.split('.')[1]}.${1 + Math.floor(Math.random() * 250)}.${2 + Math.floor(Math.random() * 250)}`;
    [port] = (await freePorts(1, clusterIp)) as [number];
    service['spec'].clusterIP = clusterIp;
    service['spec'].ports = [{ ...servicePorts[0], port, targetPort: port }];
    const mwc = structuredClone(byKind('MutatingWebhookConfiguration')[0] as Obj);
    for (const webhook of mwc['webhooks'] as Obj[]) webhook['clientConfig'].service.port = port;
    const objects = [...byKind('ConfigMap', 'Deployment', 'PodDisruptionBudget'), service, mwc];
    await apply(objects);
    // Everything written is stored, but for fields of features the API server has off.
    const dropped: string[] = [];
    for (const object of [...objects, ...byKind('Namespace', 'ServiceAccount', 'Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding')]) {
      const stored = await api().ok('GET', objectPath(object));
      collectMissing(stored, object, '', (field) => dropped.push(`${object['kind']}/${object['metadata'].name}: ${field}`));
    }
    const expected = DROPPED_BEFORE.filter((d) => assets.major === 1 && assets.minor < d.minor).map((d) => `${d.object}: ${d.field}`);
    assert.deepEqual(dropped, expected, 'fields of manifests/ the API server did not store');
    // No endpoints controller: the EndpointSlice the Service's three replicas would have.
    await api().ok('POST', `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`, {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'envoy-injector-test', labels: { 'kubernetes.io/service-name': 'envoy-injector' } },
      addressType: 'IPv4',
      endpoints: [1, 2, 3].map((i) => ({ addresses: [`192.0.2.${i}`], conditions: { ready: true }, targetRef: { kind: 'Pod', namespace: NS, name: `envoy-injector-${i}` } })),
      ports: [{ name: 'https', port, protocol: 'TCP' }],
    });
  });

  test('tls.mode secret: three replicas with the ServiceAccount token converge on one Secret and one caBundle', async () => {
    const text = readFileSync(join(MANIFESTS, 'config.yaml'), 'utf8');
    // manifests/config.yaml as the Deployment runs it, with passes every 5 s so the test is quick.
    const configFile = join(dir, 'config.yaml');
    const fileConfig = parseAllDocuments(text)[0]?.toJS() as Obj;
    fileConfig['tls'].resyncSeconds = 5;
    writeFileSync(configFile, stringifyYaml(fileConfig));
    config = loadConfig({ file: configFile, env: { POD_NAMESPACE: NS } });
    const kc = new KubeConfig();
    kc.loadFromFile(saKubeconfig);
    const support = await detectNativeSidecarSupport(kc);
    assert.equal(support.warning, undefined, 'the ServiceAccount may read what nativeSidecar auto needs');
    runtime = runtimeFor(support);
    const hosts = [clusterIp, '127.0.0.1', '127.0.0.1'];
    const ports = [port, 0, 0];
    const started = await Promise.all(
      hosts.map((host, i) => {
        const log = captureLogger('info');
        logs.push(log);
        const own = new KubeConfig();
        own.loadFromFile(saKubeconfig);
        // As serve runs it: the namespace cache reads with the ServiceAccount's own grants.
        const namespaces = createNamespaceApi(own).then((api) => new NamespaceCache({ api, logger: log.logger }));
        return namespaces.then((cache) =>
          startInjector({ ...config, server: { ...config.server, host, port: ports[i] as number } }, { logger: log.logger, runtime, kubeConfig: own, now, namespaces: cache }),
        );
      }),
    );
    replicas.push(...started);
    // Each replica's namespace cache filled itself with the ServiceAccount's grants, and watches.
    await waitFor('the namespace caches to sync', () => logs.every((l) => l.lines.some((line) => line['msg'] === 'namespace cache synced')), {
      timeoutMs: 30_000,
      detail: replicaLogs,
    });
    assert.ok(logs.every((l) => !l.lines.some((line) => String(line['msg']).startsWith('namespace cache:'))), 'no namespace cache problem');
    const current = (await waitFor('the replicas to converge', converged, { timeoutMs: 90_000, detail: replicaLogs })) as Obj;
    assert.equal(splitPemCertificates(decode(current['data']['ca.crt'])).length, 1, 'one CA');
    const creates = logs.flatMap((l) => l.lines).filter((l) => l['msg'] === 'serving certificate Secret reconciled' && l['action'] === 'created');
    assert.equal(creates.length, 1, 'one replica created the Secret, the others adopted it');
    // Each replica serves a certificate the caBundle trusts, by the Service's name.
    const [bundle] = await caBundles();
    for (const replica of replicas) {
      const address = replica.app.server.address() as { address: string; port: number };
      const served = await handshake(address.address, address.port, bundle as string, SERVICE_HOST);
      assert.equal(served.fingerprint256, new X509Certificate(decode(current['data']['tls.crt'])).fingerprint256);
    }
    // The API server calls the webhook through the Service with that caBundle.
    const pod = await createPod('apps', 'through-the-service');
    assert.equal(pod.status, 201, pod.body?.message);
    assert.ok(pod.body.metadata.annotations?.[STATUS_ANNOTATION], 'injected');
  });

  test('renewal: a serving certificate near its expiry is renewed under the same CA, and the API server keeps calling', async () => {
    const before = (await secret()) as Obj;
    const ca = { cert: decode(before['data']['ca.crt']), key: decode(before['data']['ca.key']) };
    // Someone left a certificate that expires within tls.renewBeforeDays.
    const names = new X509Certificate(decode(before['data']['tls.crt'])).subjectAltName?.split(', ').map((n) => n.replace(/^DNS:/, '')) ?? [];
    const short = await generateServingCert(ca, names, now(), 3);
    const replaced = { ...before, data: { ...before['data'], 'tls.crt': Buffer.from(short.cert).toString('base64'), 'tls.key': Buffer.from(short.key).toString('base64') } };
    await api().ok('PUT', `/api/v1/namespaces/${NS}/secrets/${SECRET}`, replaced);
    // Any replica's next pass renews it (every 5 s); run one on each now rather than wait.
    await Promise.all(replicas.map((r) => r.tls.resync()));
    const renewed = (await waitFor('a renewed certificate served by every replica', async () => {
      const current = await converged();
      return current !== false && decode(current['data']['tls.crt']) !== short.cert ? current : false;
    }, { timeoutMs: 90_000, detail: replicaLogs })) as Obj;
    const cert = new X509Certificate(decode(renewed['data']['tls.crt']));
    assert.ok(new Date(cert.validTo).getTime() - Date.now() > 300 * 24 * 3600 * 1000, 'a full-length certificate again');
    assert.equal(decode(renewed['data']['ca.crt']), ca.cert, 'the same CA');
    assert.ok(cert.verify(new X509Certificate(ca.cert).publicKey));
    const pod = await createPod('apps', 'after-renewal');
    assert.equal(pod.status, 201, pod.body?.message);
  });

  test('CA reset: deleting the Secret makes a new CA, the old one trusted through the grace and dropped after it', async () => {
    const before = (await secret()) as Obj;
    const oldCa = decode(before['data']['ca.crt']);
    await api().ok('DELETE', `/api/v1/namespaces/${NS}/secrets/${SECRET}`);
    const reset = (await waitFor('a new CA, served by every replica', async () => {
      const current = await converged();
      return current !== false && !decode(current['data']['ca.crt']).startsWith(oldCa) ? current : false;
    }, { timeoutMs: 90_000, detail: replicaLogs })) as Obj;
    const trusted = splitPemCertificates(decode(reset['data']['ca.crt']));
    assert.equal(trusted.length, 2, 'the new CA, and the old one for the grace');
    assert.equal(trusted[1], splitPemCertificates(oldCa)[0]);
    let pod = await createPod('apps', 'after-reset');
    assert.equal(pod.status, 201, pod.body?.message);

    // The grace ends: the next pass drops the old CA from the Secret and the caBundle.
    offsetMs += carryGraceMs(config.tls.resyncSeconds * 1000) + 1000;
    await Promise.all(replicas.map((r) => r.tls.resync()));
    const dropped = (await waitFor('the old CA dropped', async () => {
      const current = await converged();
      return current !== false && splitPemCertificates(decode(current['data']['ca.crt'])).length === 1 ? current : false;
    }, { timeoutMs: 90_000, detail: replicaLogs })) as Obj;
    const [bundle] = await caBundles();
    assert.equal(bundle, trusted[0], 'only the new CA is trusted');
    const first = replicas[0]?.app.server.address() as { address: string; port: number };
    await assert.rejects(handshake(first.address, first.port, oldCa, SERVICE_HOST), /certificate/i, 'the old CA no longer verifies what is served');
    assert.equal(decode(dropped['data']['ca.crt']), trusted[0]);
    pod = await createPod('apps', 'after-grace');
    assert.equal(pod.status, 201, pod.body?.message);
  });

  test('envoy-injector check against it: webhook, caBundle, endpoints, namespaces, a pod without the proxy and a stale one', async () => {
    // A pod injected by a webhook with another proxy image: its config hash is not today's.
    const older = { ...config, proxy: { ...config.proxy, image: 'envoyproxy/envoy:v1.38.0' } };
    const stale = injectPod(
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'stale', labels: { app: 'stale' } }, spec: { containers: [{ name: 'app', image: 'registry.example/app:1' }] } },
      admissionContext({ namespace: 'apps' }),
      older,
      runtime,
    );
    assert.ok(stale.pod);
    const created = await api().request('POST', '/api/v1/namespaces/apps/pods', stale.pod);
    assert.equal(created.status, 201, created.body?.message);
    assert.equal(created.body.metadata.annotations[STATUS_ANNOTATION], stale.pod['metadata'] && (stale.pod['metadata'] as Obj)['annotations'][STATUS_ANNOTATION], 'the webhook left it as it was');
    const optedOut = await api().request('POST', '/api/v1/namespaces/apps/pods', {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'opted-out', annotations: { [INJECT_ANNOTATION]: 'false' } },
      spec: { containers: [{ name: 'app', image: 'registry.example/app:1' }] },
    });
    assert.equal(optedOut.status, 201, optedOut.body?.message);

    const configFile = join(dir, 'config.yaml');
    const result = await checkInProcess(['-c', configFile, '--kubeconfig', api().kubeconfig, '-o', 'json']);
    assert.equal(result.code, 1, 'check exits 1 when something fails');
    const findings = JSON.parse(result.stdout) as { level: string; check: string; message: string }[];
    const find = (check: string, pattern: RegExp) => findings.find((f) => f.check === check && pattern.test(f.message));
    const expectFinding = (level: string, check: string, pattern: RegExp) => {
      const finding = find(check, pattern);
      assert.ok(finding, `${check} ${pattern}: in\n${findings.map((f) => `${f.level} ${f.check} ${f.message}`).join('\n')}`);
      assert.equal(finding.level, level, finding.message);
    };
    expectFinding('ok', 'webhook-configuration', new RegExp(`→ Service ${NS}/envoy-injector:${port}/mutate`));
    expectFinding('ok', 'ca-bundle', /caBundle of every webhook trusts the serving certificate/);
    expectFinding('ok', 'service', /3 ready endpoints/);
    expectFinding(runtime.nativeSidecarSupported ? 'ok' : 'info', 'nodes', /nativeSidecar auto/);
    expectFinding('ok', 'namespaces', /2 namespaces labelled envoy-injector.io\/inject=enabled: apps, locked/);
    expectFinding('warn', 'namespaces', /locked enforces Pod Security "restricted"/);
    expectFinding('fail', 'pods', /^apps\/early: runs without the proxy/);
    expectFinding('warn', 'pods', /^apps\/stale: stale proxy: proxy image envoyproxy\/envoy:v1\.38\.0 → /);
    // What differs is the image alone: nothing the API server defaulted or added (probe periods, port
    // protocols, fieldRef apiVersions, the ServiceAccount token mount) counts as a difference.
    assert.deepEqual((find('pods', /^apps\/stale: stale proxy/) as { differences?: unknown } | undefined)?.differences, [
      { what: 'proxy image', pod: 'envoyproxy/envoy:v1.38.0', now: config.proxy.image },
    ]);
    expectFinding('info', 'pods', /^apps: 7 running pods: 4 injected, 1 stale, 1 not injected, 1 skipped by design$/);
    const failures = findings.filter((f) => f.level === 'fail');
    assert.deepEqual(failures.map((f) => f.message.split(':')[0]), ['apps/early'], 'nothing else fails');
    // The command as an admin runs it says the same.
    const text = await runCheck(['-c', configFile, '--kubeconfig', api().kubeconfig]);
    assert.equal(text.code, 1, text.stderr);
    assert.match(text.stdout, /^FAIL {2}apps\/early: runs without the proxy/m);
    assert.match(text.stdout, /1 failure, \d+ warnings?$/m);
  });

  test('nativeSidecar auto with Node objects: one kubelet older than 1.29 means classic sidecars, named by auto and by check', async () => {
    /** Registers a node as its kubelet would (the object, then its status with the kubelet's version). */
    const registerNode = async (name: string, kubeletVersion: string) => {
      const existing = await api().request('GET', `/api/v1/nodes/${name}`);
      const node = existing.status === 200 ? existing.body : await api().ok('POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'kubernetes.io/hostname': name } } });
      await api().ok('PUT', `/api/v1/nodes/${name}/status`, { ...node, status: { ...node.status, nodeInfo: { ...node.status?.nodeInfo, kubeletVersion, kubeProxyVersion: kubeletVersion, operatingSystem: 'linux', architecture: 'amd64' } } });
    };
    const kc = new KubeConfig();
    kc.loadFromFile(saKubeconfig);
    const serverNative = assets.major > 1 || assets.minor >= 29;
    await registerNode('node-a', assets.version);
    await registerNode('node-b', 'v1.28.15');
    let support = await detectNativeSidecarSupport(kc);
    assert.equal(support.supported, false);
    assert.equal(support.warning, undefined);
    if (serverNative) {
      assert.equal(support.detail, `API server ${assets.version}, but 1 of 2 nodes runs a kubelet older than 1.29 (node-b v1.28.15): classic sidecars (native needs every kubelet ≥ 1.29)`);
      const result = await checkInProcess(['-c', join(dir, 'config.yaml'), '--kubeconfig', api().kubeconfig, '-o', 'json']);
      const nodes = (JSON.parse(result.stdout) as { level: string; check: string; message: string }[]).filter((f) => f.check === 'nodes');
      assert.equal(nodes.length, 1, JSON.stringify(nodes));
      assert.equal(nodes[0]?.level, 'warn');
      assert.match(nodes[0]?.message ?? '', /^1 of 2 nodes runs a kubelet older than 1\.29 \(node-b v1\.28\.15\): nativeSidecar auto gives classic sidecars/);
    } else {
      assert.equal(support.detail, `API server ${assets.version}: classic sidecars (native needs ≥ 1.29)`);
    }
    // The node upgraded: every kubelet at 1.29 or later.
    await registerNode('node-b', 'v1.29.3');
    support = await detectNativeSidecarSupport(kc);
    assert.equal(support.supported, serverNative);
    if (serverNative) assert.equal(support.detail, `API server ${assets.version}, every kubelet ≥ 1.29 (2 nodes): native sidecars`);
  });
});

/** The API path of a manifest object. */
function objectPath(object: Obj): string {
  const [group, version] = String(object['apiVersion']).includes('/') ? String(object['apiVersion']).split('/') : ['', object['apiVersion']];
  const plural: Record<string, string> = {
    Namespace: 'namespaces',
    ServiceAccount: 'serviceaccounts',
    Role: 'roles',
    RoleBinding: 'rolebindings',
    ClusterRole: 'clusterroles',
    ClusterRoleBinding: 'clusterrolebindings',
    ConfigMap: 'configmaps',
    Service: 'services',
    Deployment: 'deployments',
    PodDisruptionBudget: 'poddisruptionbudgets',
    MutatingWebhookConfiguration: 'mutatingwebhookconfigurations',
  };
  const resource = plural[object['kind']];
  assert.ok(resource, `a path for ${object['kind']}`);
  const base = group === '' ? `/api/${version}` : `/apis/${group}/${version}`;
  const namespace = object['metadata'].namespace;
  return `${base}${namespace === undefined ? '' : `/namespaces/${namespace}`}/${resource}/${object['metadata'].name}`;
}

/** Calls `missing` with the path of every field of `written` that `stored` lacks (values of quantities and ports may be normalized). */
function collectMissing(stored: unknown, written: unknown, path: string, missing: (path: string) => void): void {
  if (Array.isArray(written)) {
    if (!Array.isArray(stored)) return missing(path);
    written.forEach((item, i) => collectMissing(stored[i], item, `${path}[${i}]`, missing));
  } else if (typeof written === 'object' && written !== null) {
    if (typeof stored !== 'object' || stored === null) return missing(path);
    for (const [key, value] of Object.entries(written)) {
      const child = path === '' ? key : `${path}.${key}`;
      if (!(key in (stored as Obj))) missing(child);
      else collectMissing((stored as Obj)[key], value, child, missing);
    }
  }
}


// manifests/ (SPEC.md §7): every file parses and validates against the Kubernetes schema (types,
// required fields and enums from kubernetes-models; unknown fields against client-node's models of
// Kubernetes 1.34), `kubectl kustomize` renders every file, and the rendered objects carry what a
// cluster admin relies on: least-privilege RBAC, the hardened Deployment, and webhooks that send
// exactly the pods they should.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { MutatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ClusterRole, ClusterRoleBinding, Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { ConfigMap, Namespace, Service, ServiceAccount } from 'kubernetes-models/v1';
import { parseAllDocuments } from 'yaml';
import { DEFAULT_INIT_IMAGE, loadConfig } from '../src/config.ts';
import { INJECT_LABEL, PATHS, WEBHOOK_PORT } from '../src/constants.ts';
import { maxDetectionMs, SERVER_DETECT_ATTEMPTS } from '../src/kube/version.ts';

const DIR = new URL('../manifests/', import.meta.url).pathname;
type Obj = Record<string, any>;

/** Schema validation (kubernetes-models) and the client-node model used for unknown fields, by kind. */
const KINDS: Record<string, { validate: (o: Obj) => void; model: string }> = {
  'v1/Namespace': { validate: (o) => new Namespace(o as never).validate(), model: 'V1Namespace' },
  'v1/ServiceAccount': { validate: (o) => new ServiceAccount(o as never).validate(), model: 'V1ServiceAccount' },
  'v1/ConfigMap': { validate: (o) => new ConfigMap(o as never).validate(), model: 'V1ConfigMap' },
  'v1/Service': { validate: (o) => new Service(o as never).validate(), model: 'V1Service' },
  'apps/v1/Deployment': { validate: (o) => new Deployment(o as never).validate(), model: 'V1Deployment' },
  'policy/v1/PodDisruptionBudget': { validate: (o) => new PodDisruptionBudget(o as never).validate(), model: 'V1PodDisruptionBudget' },
  'rbac.authorization.k8s.io/v1/Role': { validate: (o) => new Role(o as never).validate(), model: 'V1Role' },
  'rbac.authorization.k8s.io/v1/RoleBinding': { validate: (o) => new RoleBinding(o as never).validate(), model: 'V1RoleBinding' },
  'rbac.authorization.k8s.io/v1/ClusterRole': { validate: (o) => new ClusterRole(o as never).validate(), model: 'V1ClusterRole' },
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': {
    validate: (o) => new ClusterRoleBinding(o as never).validate(),
    model: 'V1ClusterRoleBinding',
  },
  'admissionregistration.k8s.io/v1/MutatingWebhookConfiguration': {
    validate: (o) => new MutatingWebhookConfiguration(o as never).validate(),
    model: 'V1MutatingWebhookConfiguration',
  },
};

/**
 * Returns the paths of fields the Kubernetes model does not have (kubernetes-models' schemas allow
 * any extra property; a typo such as `readinessprobe` would otherwise pass).
 */
function unknownFields(value: unknown, type: string, path: string): string[] {
  if (value === null || value === undefined) return [];
  const array = /^Array<(.+)>$/.exec(type);
  if (array) return Array.isArray(value) ? value.flatMap((v, i) => unknownFields(v, array[1] as string, `${path}[${i}]`)) : [`${path} (not a list)`];
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) return Object.entries(value as Obj).flatMap(([k, v]) => unknownFields(v, map[1] as string, `${path}.${k}`));
  const model = (k8s as unknown as Record<string, { getAttributeTypeMap?: () => { name: string; baseName: string; type: string }[] }>)[type];
  if (model?.getAttributeTypeMap === undefined) return []; // string, number, IntOrString, any, …
  if (typeof value !== 'object' || Array.isArray(value)) return [`${path} (not an object)`];
  const attributes = model.getAttributeTypeMap();
  return Object.entries(value as Obj).flatMap(([key, child]) => {
    const attribute = attributes.find((a) => a.baseName === key);
    return attribute === undefined ? [`${path}.${key}`] : unknownFields(child, attribute.type, `${path}.${key}`);
  });
}

/** Validates one object; returns its problems (empty when valid). */
function problemsOf(object: Obj): string[] {
  const kind = KINDS[`${object['apiVersion']}/${object['kind']}`];
  if (kind === undefined) return [`no schema known for ${object['apiVersion']} ${object['kind']}`];
  const problems: string[] = [];
  try {
    kind.validate(object);
  } catch (error) {
    problems.push((error as Error).message);
  }
  problems.push(...unknownFields(object, kind.model, `${object['kind']}`).map((p) => `unknown field ${p}`));
  return problems;
}

const yamlFiles = readdirSync(DIR).filter((f) => f.endsWith('.yaml'));
const resourceFiles = yamlFiles.filter((f) => f !== 'kustomization.yaml' && f !== 'config.yaml');

function documentsOf(text: string, source: string): Obj[] {
  return parseAllDocuments(text).flatMap((doc) => {
    assert.equal(doc.errors.length, 0, `${source}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value = doc.toJS() as Obj | null;
    return value === null ? [] : [value];
  });
}

/** Runs `kubectl kustomize manifests/` ($KUBECTL, else kubectl on PATH) and returns the objects. */
function render(): Obj[] {
  const kubectl = process.env['KUBECTL'] ?? 'kubectl';
  const run = spawnSync(kubectl, ['kustomize', DIR], { encoding: 'utf8' });
  assert.ok(
    run.error === undefined,
    `cannot run ${kubectl} (${run.error?.message}): install kubectl, e.g. Debian's kubernetes-client package (.ci/run does)`,
  );
  assert.equal(run.status, 0, run.stderr);
  return documentsOf(run.stdout, 'kubectl kustomize output');
}

const rendered = render();
const find = (kind: string, name?: string): Obj => {
  const found = rendered.filter((o) => o['kind'] === kind && (name === undefined || o['metadata'].name === name));
  assert.equal(found.length, 1, `exactly one ${kind}${name === undefined ? '' : ` ${name}`} is rendered`);
  return found[0] as Obj;
};

// The injector config the Deployment runs with, read as the server reads it.
const configText = readFileSync(join(DIR, 'config.yaml'), 'utf8');
const config = loadConfig({ file: 'manifests/config.yaml', readFile: () => configText, env: { POD_NAMESPACE: 'envoy-injector' } });
const NAMESPACE = config.namespace;

test('every manifest file parses and validates against the Kubernetes schema', () => {
  assert.ok(resourceFiles.length >= 7, `resource files: ${resourceFiles.join(', ')}`);
  for (const file of resourceFiles) {
    const docs = documentsOf(readFileSync(join(DIR, file), 'utf8'), file);
    assert.ok(docs.length > 0, `${file} holds objects`);
    for (const doc of docs) assert.deepEqual(problemsOf(doc), [], `${file}: ${doc['kind']} ${doc['metadata']?.name}`);
  }
});

test('the validation used here refuses what the API server would refuse', () => {
  const deployment = documentsOf(readFileSync(join(DIR, 'deployment.yaml'), 'utf8'), 'deployment.yaml')[0] as Obj;
  const typo = structuredClone(deployment);
  typo['spec'].template.spec.containers[0].readinessprobe = typo['spec'].template.spec.containers[0].readinessProbe;
  assert.deepEqual(problemsOf(typo), ['unknown field Deployment.spec.template.spec.containers[0].readinessprobe']);
  const wrongType = structuredClone(deployment);
  wrongType['spec'].template.spec.securityContext.runAsUser = 'nobody';
  assert.match(problemsOf(wrongType).join('\n'), /runAsUser must be integer/);
  const badEnum = documentsOf(readFileSync(join(DIR, 'mutatingwebhookconfiguration.yaml'), 'utf8'), 'mwc')[0] as Obj;
  badEnum['webhooks'][0].failurePolicy = 'Sometimes';
  delete badEnum['webhooks'][1].admissionReviewVersions;
  const problems = problemsOf(badEnum).join('\n');
  assert.match(problems, /webhooks\/0\/failurePolicy must be equal to one of the allowed values/);
  assert.match(problems, /webhooks\/1 must have required property admissionReviewVersions/);
});

test('kubectl kustomize renders every file, and every rendered object validates', () => {
  const declared = documentsOf(readFileSync(join(DIR, 'kustomization.yaml'), 'utf8'), 'kustomization.yaml')[0] as Obj;
  assert.deepEqual([...(declared['resources'] as string[])].sort(), [...resourceFiles].sort(), 'every resource file is in the kustomization');
  assert.deepEqual(declared['configMapGenerator'][0].files, ['config.yaml']);
  const fromFiles = resourceFiles.flatMap((f) => documentsOf(readFileSync(join(DIR, f), 'utf8'), f)).map((o) => `${o['kind']}/${o['metadata'].name}`);
  const renderedNames = rendered.map((o) => `${o['kind']}/${o['metadata'].name}`);
  for (const name of fromFiles) assert.ok(renderedNames.includes(name), `${name} is rendered`);
  assert.equal(rendered.length, fromFiles.length + 1, 'the files plus the generated ConfigMap');
  for (const object of rendered) assert.deepEqual(problemsOf(object), [], `${object['kind']} ${object['metadata'].name}`);
  for (const object of rendered.filter((o) => !['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'MutatingWebhookConfiguration'].includes(o['kind']))) {
    assert.equal(object['metadata'].namespace, NAMESPACE, `${object['kind']} ${object['metadata'].name} is in the injector's namespace`);
  }
  assert.equal(find('Namespace')['metadata'].name, NAMESPACE);
  assert.equal(find('Namespace')['metadata'].labels['pod-security.kubernetes.io/enforce'], 'restricted');
});

test('the config in the ConfigMap is valid and agrees with the other objects', () => {
  const configMap = find('ConfigMap');
  assert.match(configMap['metadata'].name, /^envoy-injector-config-[a-z0-9]+$/, 'named with a content hash, so a change rolls the Deployment');
  assert.equal(configMap['data']['config.yaml'], configText);
  assert.equal(config.server.host, '0.0.0.0');
  assert.equal(config.server.port, WEBHOOK_PORT);
  assert.equal(config.tls.mode, 'secret');
  assert.equal(find('Service', config.tls.serviceName)['metadata'].namespace, NAMESPACE);
  assert.equal(find('MutatingWebhookConfiguration')['metadata'].name, config.tls.webhookConfigName);
  assert.deepEqual(find('Role')['rules'][0].resourceNames, [config.tls.secretName]);
  assert.deepEqual(find('ClusterRole')['rules'][0].resourceNames, [config.tls.webhookConfigName]);
});

test('the Deployment: replicas, image, config, probes, preStop and every security setting', () => {
  const deployment = find('Deployment');
  const spec = deployment['spec'];
  const pod = spec.template.spec;
  assert.equal(spec.replicas, 2);
  assert.equal(spec.strategy.rollingUpdate.maxUnavailable, 0, 'an upgrade never lowers the number of ready replicas');
  assert.deepEqual(spec.selector.matchLabels, { 'app.kubernetes.io/name': 'envoy-injector' });
  for (const [k, v] of Object.entries(spec.selector.matchLabels)) assert.equal(spec.template.metadata.labels[k], v);
  const antiAffinity = pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm;
  assert.equal(antiAffinity.topologyKey, 'kubernetes.io/hostname');
  assert.deepEqual(antiAffinity.labelSelector.matchLabels, spec.selector.matchLabels);
  assert.equal(pod.serviceAccountName, find('ServiceAccount')['metadata'].name);

  // Pod-level hardening.
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.ok(pod.securityContext.runAsUser > 0 && pod.securityContext.runAsGroup > 0);
  assert.equal(pod.securityContext.seccompProfile.type, 'RuntimeDefault');
  assert.equal(pod.hostNetwork ?? false, false);
  assert.equal(pod.hostPID ?? false, false);
  assert.equal(pod.containers.length, 1);
  assert.equal(pod.initContainers, undefined);

  const container = pod.containers[0];
  assert.equal(container.image, DEFAULT_INIT_IMAGE, 'the webhook runs the image envoy-init uses');
  assert.match(container.image, /^ghcr\.io\/envoy-injector\/envoy-injector:v\d+\.\d+\.\d+/);
  assert.deepEqual(container.args, ['serve']);
  const sc = container.securityContext;
  assert.equal(sc.allowPrivilegeEscalation, false);
  assert.equal(sc.readOnlyRootFilesystem, true);
  assert.equal(sc.runAsNonRoot, true);
  assert.equal(sc.privileged ?? false, false);
  assert.deepEqual(sc.capabilities.drop, ['ALL']);
  assert.equal(sc.capabilities.add, undefined);
  assert.equal(sc.seccompProfile.type, 'RuntimeDefault');

  assert.ok(container.resources.requests.cpu && container.resources.requests.memory, 'requests set');
  assert.ok(container.resources.limits.memory, 'memory limit set');

  // Config mounted from the generated ConfigMap and named by ENVOY_INJECTOR_CONFIG; namespace from the downward API.
  const env = Object.fromEntries(container.env.map((e: Obj) => [e['name'], e]));
  const configVolume = pod.volumes.find((v: Obj) => v['configMap'] !== undefined);
  assert.equal(configVolume.configMap.name, find('ConfigMap')['metadata'].name);
  const mount = container.volumeMounts.find((m: Obj) => m['name'] === configVolume.name);
  assert.equal(mount.readOnly, true);
  assert.equal(env['ENVOY_INJECTOR_CONFIG'].value, `${mount.mountPath}/config.yaml`);
  assert.equal(env['POD_NAMESPACE'].valueFrom.fieldRef.fieldPath, 'metadata.namespace');
  assert.deepEqual(container.args, ['serve'], 'the server is started explicitly (a bare envoy-injector prints its help)');
  // No service link variables: a Service of the namespace named envoy-injector* would otherwise put
  // its *_SERVICE_HOST and kin into the environment, which the config check reads.
  assert.equal(pod.enableServiceLinks, false);
  // The environment the replicas start with is one the config accepts, with the mounted file.
  const replicaEnv = Object.fromEntries(container.env.flatMap((e: Obj) => (typeof e['value'] === 'string' ? [[e['name'], e['value']]] : [])));
  loadConfig({ env: { ...replicaEnv, POD_NAMESPACE: 'envoy-injector' }, readFile: () => readFileSync(join(DIR, 'config.yaml'), 'utf8') });

  // Probes over HTTPS on the webhook port.
  const port = container.ports.find((p: Obj) => p['name'] === 'https');
  assert.equal(port.containerPort, config.server.port);
  assert.deepEqual(
    { path: container.readinessProbe.httpGet.path, port: container.readinessProbe.httpGet.port, scheme: container.readinessProbe.httpGet.scheme },
    { path: PATHS.readyz, port: 'https', scheme: 'HTTPS' },
  );
  assert.deepEqual(
    { path: container.livenessProbe.httpGet.path, port: container.livenessProbe.httpGet.port, scheme: container.livenessProbe.httpGet.scheme },
    { path: PATHS.healthz, port: 'https', scheme: 'HTTPS' },
  );

  // A short preStop lets the endpoint drain; the grace period covers it plus the server's own drain.
  const preStop = container.lifecycle.preStop.exec.command as string[];
  assert.equal(preStop[0], 'sleep');
  const preStopSeconds = Number(preStop[1]);
  assert.ok(preStopSeconds > 0 && preStopSeconds <= 15, `preStop sleeps ${preStopSeconds}s`);
  assert.ok(pod.terminationGracePeriodSeconds >= preStopSeconds + config.server.shutdownGraceMs / 1000);

  // Read-only root: the only writable mount is an emptyDir.
  for (const m of container.volumeMounts.filter((x: Obj) => x['readOnly'] !== true)) {
    assert.ok(pod.volumes.find((v: Obj) => v['name'] === m['name']).emptyDir !== undefined, `${m['mountPath']} is an emptyDir`);
  }
});

test('the PodDisruptionBudget keeps one replica and the Service targets the webhook port', () => {
  const deployment = find('Deployment');
  const pdb = find('PodDisruptionBudget');
  assert.equal(pdb['spec'].minAvailable, 1);
  assert.ok(pdb['spec'].minAvailable < deployment['spec'].replicas, 'a node drain can proceed');
  assert.deepEqual(pdb['spec'].selector.matchLabels, deployment['spec'].selector.matchLabels);
  const service = find('Service');
  assert.deepEqual(service['spec'].selector, deployment['spec'].selector.matchLabels);
  const servicePort = service['spec'].ports[0];
  assert.equal(servicePort.port, 443);
  const containerPort = deployment['spec'].template.spec.containers[0].ports.find((p: Obj) => p['name'] === servicePort.targetPort);
  assert.equal(containerPort.containerPort, WEBHOOK_PORT);
});

test('RBAC: only its own Secret and its own webhook configuration, by name (create excepted, in its namespace), listing nodes, reading namespaces', () => {
  const account = find('ServiceAccount');
  const role = find('Role');
  const clusterRole = find('ClusterRole');
  // The one list grant: the nodes, read-only, for their kubelet versions (nativeSidecar: auto).
  const listNodes = { apiGroups: [''], resources: ['nodes'], verbs: ['list'] };
  // The one watch: namespaces, read-only, for the namespace defaults cache (SPEC.md §4b, §7).
  const readNamespaces = { apiGroups: [''], resources: ['namespaces'], verbs: ['get', 'list', 'watch'] };
  for (const rule of [...role['rules'], ...clusterRole['rules']] as Obj[]) {
    for (const field of ['apiGroups', 'resources', 'verbs', 'resourceNames']) {
      assert.ok(!(rule[field] ?? []).includes('*'), `no wildcard in ${field}`);
    }
    if (rule['resources'].includes('namespaces')) {
      assert.deepEqual(rule, readNamespaces, 'namespaces: get, list and watch only');
      continue;
    }
    assert.ok(!rule['verbs'].some((v: string) => ['watch', 'delete', 'deletecollection', 'patch', 'escalate', 'bind', 'impersonate', 'proxy'].includes(v)), `verbs ${rule['verbs']}`);
    if (rule['verbs'].includes('list')) assert.deepEqual(rule, listNodes, 'list only on nodes');
    if (rule['resources'].includes('nodes')) assert.deepEqual(rule['verbs'], ['list'], 'nodes: list only (no get of nodes/proxy, no writes)');
  }
  assert.deepEqual(role['rules'], [
    { apiGroups: [''], resources: ['secrets'], resourceNames: [config.tls.secretName], verbs: ['get', 'update'] },
    // The only rule without resourceNames: create cannot be limited by name; it is namespaced.
    { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
  ]);
  assert.equal(role['metadata'].namespace, NAMESPACE);
  assert.deepEqual(clusterRole['rules'], [
    {
      apiGroups: ['admissionregistration.k8s.io'],
      resources: ['mutatingwebhookconfigurations'],
      resourceNames: [config.tls.webhookConfigName],
      verbs: ['get', 'update'],
    },
    listNodes,
    readNamespaces,
  ]);
  // Nothing cluster-wide about Secrets: those rules live in the namespaced Role only.
  assert.ok(!(clusterRole['rules'] as Obj[]).some((r) => r['resources'].includes('secrets')));
  for (const [binding, target] of [
    [find('RoleBinding'), role],
    [find('ClusterRoleBinding'), clusterRole],
  ] as const) {
    assert.deepEqual(binding['roleRef'], { apiGroup: 'rbac.authorization.k8s.io', kind: target['kind'], name: target['metadata'].name });
    assert.deepEqual(binding['subjects'], [{ kind: 'ServiceAccount', name: account['metadata'].name, namespace: NAMESPACE }]);
  }
});

/** Evaluates a metav1.LabelSelector as the API server does. */
function selects(selector: Obj | undefined, labels: Record<string, string>): boolean {
  if (selector === undefined) return true;
  const matchLabels = (selector['matchLabels'] ?? {}) as Record<string, string>;
  if (!Object.entries(matchLabels).every(([k, v]) => labels[k] === v)) return false;
  return ((selector['matchExpressions'] ?? []) as Obj[]).every((e) => {
    const value = labels[e['key']];
    switch (e['operator']) {
      case 'In':
        return value !== undefined && e['values'].includes(value);
      case 'NotIn':
        return value === undefined || !e['values'].includes(value);
      case 'Exists':
        return value !== undefined;
      case 'DoesNotExist':
        return value === undefined;
      default:
        throw new Error(`unknown operator ${e['operator']}`);
    }
  });
}

test('the MutatingWebhookConfiguration: protocol settings and exactly the pods it should send', () => {
  const mwc = find('MutatingWebhookConfiguration');
  const service = find('Service');
  const webhooks = mwc['webhooks'] as Obj[];
  assert.equal(webhooks.length, 2);
  for (const webhook of webhooks) {
    assert.equal(webhook['sideEffects'], 'None');
    assert.deepEqual(webhook['admissionReviewVersions'], ['v1']);
    assert.equal(webhook['failurePolicy'], 'Fail');
    assert.ok(Number.isInteger(webhook['timeoutSeconds']) && webhook['timeoutSeconds'] >= 1 && webhook['timeoutSeconds'] <= 30);
    assert.equal(webhook['reinvocationPolicy'], 'IfNeeded');
    assert.deepEqual(webhook['rules'], [
      { operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' },
    ]);
    assert.deepEqual(webhook['clientConfig'], {
      service: { name: service['metadata'].name, namespace: NAMESPACE, path: PATHS.mutate, port: service['spec'].ports[0].port },
    });
  }

  /** Which webhooks the API server would call for a pod in a namespace with these labels. */
  const calledBy = (namespace: string, namespaceLabels: Record<string, string>, podLabels: Record<string, string>) =>
    webhooks
      .filter(
        (w) =>
          selects(w['namespaceSelector'], { ...namespaceLabels, 'kubernetes.io/metadata.name': namespace }) &&
          selects(w['objectSelector'], podLabels),
      )
      .map((w) => w['name'] as string);
  const enabled = { [INJECT_LABEL]: 'enabled' };
  const disabled = { [INJECT_LABEL]: 'disabled' };
  const [byNamespace, byPodLabel] = webhooks.map((w) => w['name']);
  const cases: [string, string, Record<string, string>, Record<string, string>, string[]][] = [
    ['labelled namespace, plain pod', 'shop', enabled, {}, [byNamespace]],
    ['labelled namespace, pod labelled enabled', 'shop', enabled, enabled, [byNamespace]],
    ['labelled namespace, pod labelled disabled', 'shop', enabled, disabled, []],
    ['unlabelled namespace, plain pod', 'default', {}, {}, []],
    ['unlabelled namespace, pod labelled enabled', 'default', {}, enabled, [byPodLabel]],
    ['namespace labelled disabled, pod labelled enabled', 'legacy', disabled, enabled, []],
    ['namespace with another value, pod labelled enabled', 'odd', { [INJECT_LABEL]: 'maybe' }, enabled, []],
    ['kube-system, even labelled', 'kube-system', enabled, enabled, []],
    ['kube-public, pod labelled', 'kube-public', {}, enabled, []],
    ["the injector's own namespace", NAMESPACE, enabled, enabled, []],
  ];
  for (const [name, namespace, namespaceLabels, podLabels, expected] of cases) {
    assert.deepEqual(calledBy(namespace, namespaceLabels, podLabels), expected, name);
  }
});

test('memory: the limit holds the idle process plus every admission in flight at the body limit', () => {
  const container = find('Deployment')['spec'].template.spec.containers[0];
  const mebibytes = (quantity: string) => {
    const match = /^(\d+)(Mi|Gi)$/.exec(quantity);
    assert.ok(match, `memory quantity ${quantity} in Mi or Gi`);
    return Number(match[1]) * (match[2] === 'Gi' ? 1024 : 1);
  };
  const limit = mebibytes(container.resources.limits.memory);
  const request = mebibytes(container.resources.requests.memory);
  // A review carries at most object and oldObject, each at most ~1.5 MiB (etcd's limit): the body
  // limit admits that and little more.
  assert.equal(config.server.bodyLimitBytes, 3 * 1024 * 1024);
  assert.equal(config.server.maxConcurrentAdmissions, 32);
  assert.equal(config.server.maxRequestsPerPeer, 16);
  // Measured: ~157 MB resident when idle; a review being answered costs about twice its size in
  // heap (the body, then the parsed JSON), a body still arriving its size, at most
  // maxRequestsPerPeer of them per address (one address counted: the API server's, or a pod's).
  const idle = 160;
  const bodyMiB = config.server.bodyLimitBytes / (1024 * 1024);
  const inFlight = config.server.maxConcurrentAdmissions * 2 * bodyMiB + config.server.maxRequestsPerPeer * bodyMiB;
  assert.ok(limit >= (idle + inFlight) * 1.25, `limit ${limit}Mi holds ${idle}Mi idle + ${inFlight}Mi in flight with a quarter to spare`);
  // Requested at least what it uses idle, so it is not the first to go under node memory pressure.
  assert.ok(request >= idle, `request ${request}Mi covers the idle ${idle}Mi`);
});

test('the startup probe gives nativeSidecar auto its retries at start', () => {
  const container = find('Deployment')['spec'].template.spec.containers[0];
  const probe = container.startupProbe;
  assert.deepEqual({ path: probe.httpGet.path, port: probe.httpGet.port, scheme: probe.httpGet.scheme }, { path: PATHS.healthz, port: 'https', scheme: 'HTTPS' });
  // The server listens only once the version and the nodes were asked (retries included): the
  // probe must allow for that, twice over, before the liveness probe may restart the container.
  const budgetMs = ((probe.initialDelaySeconds ?? 0) + probe.periodSeconds * probe.failureThreshold) * 1000;
  assert.ok(budgetMs >= 2 * maxDetectionMs({ attempts: SERVER_DETECT_ATTEMPTS }), `startup budget ${budgetMs} ms`);
  assert.ok(budgetMs <= 120_000, 'a replica that cannot start is noticed within two minutes');
});

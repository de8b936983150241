// The pods the benchmark injects: a typical one as the API server sends it for a Deployment's
// replica, the large pod of SPEC.md §6 (64 KB, 1,500 environment variables), and pods of n
// containers for the growth measurement.

type Obj = Record<string, unknown>;

/** Returns one application container as a Deployment's template would give it. */
function appContainer(name: string, index: number, envCount: number): Obj {
  return {
    name,
    image: `registry.example.com/shop/${name}:1.8.${index}`,
    imagePullPolicy: 'IfNotPresent',
    ports: [
      { name: 'http', containerPort: 8080 + index, protocol: 'TCP' },
      { name: 'metrics', containerPort: 9100 + index, protocol: 'TCP' },
    ],
    env: Array.from({ length: envCount }, (_, i) => ({ name: `SETTING_${i}`, value: `value-${i}` })),
    resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '256Mi' } },
    livenessProbe: { httpGet: { path: '/healthz', port: 8080 + index, scheme: 'HTTP' }, periodSeconds: 10, timeoutSeconds: 1, successThreshold: 1, failureThreshold: 3 },
    readinessProbe: { httpGet: { path: '/ready', port: 8080 + index, scheme: 'HTTP' }, periodSeconds: 5, timeoutSeconds: 1, successThreshold: 1, failureThreshold: 3 },
    volumeMounts: [{ name: 'kube-api-access-x7k2p', readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' }],
    securityContext: { allowPrivilegeEscalation: false, runAsNonRoot: true, runAsUser: 1000 },
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'File',
  };
}

/** Returns a pod as the API server sends it on CREATE for a ReplicaSet's replica, with `containers`. */
export function podWith(containers: Obj[]): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: 'reviews-v1-7d9c8b5f4d-',
      namespace: 'shop',
      labels: { app: 'reviews', version: 'v1', 'pod-template-hash': '7d9c8b5f4d' },
      annotations: { 'kubectl.kubernetes.io/restartedAt': '2025-11-02T10:00:00Z' },
      ownerReferences: [
        { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'reviews-v1-7d9c8b5f4d', uid: '3c3a5a3e-5c1f-4a7e-9a4c-1c2d3e4f5a6b', controller: true, blockOwnerDeletion: true },
      ],
      managedFields: [
        {
          manager: 'kube-controller-manager',
          operation: 'Update',
          apiVersion: 'v1',
          time: '2025-11-02T10:00:01Z',
          fieldsType: 'FieldsV1',
          fieldsV1: { 'f:metadata': { 'f:generateName': {}, 'f:labels': { '.': {}, 'f:app': {}, 'f:version': {} } }, 'f:spec': { 'f:containers': {} } },
        },
      ],
    },
    spec: {
      volumes: [
        {
          name: 'kube-api-access-x7k2p',
          projected: {
            sources: [
              { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
              { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
              { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
            ],
            defaultMode: 420,
          },
        },
      ],
      containers,
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
      dnsPolicy: 'ClusterFirst',
      serviceAccountName: 'reviews',
      serviceAccount: 'reviews',
      securityContext: { fsGroup: 2000 },
      schedulerName: 'default-scheduler',
      tolerations: [
        { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
        { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
      ],
      priority: 0,
      enableServiceLinks: true,
      preemptionPolicy: 'PreemptLowerPriority',
    },
    status: {},
  };
}

/** A typical pod: one application container with a handful of settings (about 3 KB of JSON). */
export function typicalPod(): Obj {
  return podWith([appContainer('reviews', 0, 6)]);
}

/** A pod of `count` application containers, each like the typical pod's. */
export function podOfContainers(count: number): Obj {
  return podWith(Array.from({ length: count }, (_, i) => appContainer(`app-${i}`, i, 6)));
}

/** Target size of the large pod's JSON (SPEC.md §6). */
export const LARGE_POD_BYTES = 64 * 1024;
export const LARGE_POD_ENV_VARS = 1_500;

/** The large pod: 1,500 environment variables, padded so its JSON is 64 KiB. */
export function largePod(): Obj {
  const env = (valueLength: number) =>
    Array.from({ length: LARGE_POD_ENV_VARS }, (_, i) => ({ name: `FEATURE_FLAG_${String(i).padStart(4, '0')}`, value: 'v'.repeat(valueLength) }));
  const build = (valueLength: number) => {
    const container = { ...appContainer('monolith', 0, 0), env: env(valueLength) };
    return podWith([container]);
  };
  // Each character of every value adds 1,500 bytes; pick the length that lands closest to 64 KiB.
  const bare = JSON.stringify(build(0)).length;
  const valueLength = Math.max(0, Math.round((LARGE_POD_BYTES - bare) / LARGE_POD_ENV_VARS));
  return build(valueLength);
}

/** Returns an AdmissionReview (v1) asking to admit the creation of `pod`. */
export function reviewOf(pod: Obj, uid = '7c3e1a52-0d5f-4b1e-9f0a-2b6c8d9e1f30'): Obj {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'shop',
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller', uid: 'a1b2', groups: ['system:serviceaccounts', 'system:authenticated'] },
      object: pod,
      oldObject: null,
      dryRun: false,
      options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
    },
  };
}

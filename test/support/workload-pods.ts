// Turns the Pods and pod templates of manifests into the Pods their controllers would create (no
// controller runs beside a test API server): generateName as the ReplicaSet, Job and DaemonSet
// controllers use it, the StatefulSet's ordinal name and hostname, the labels each controller adds,
// and an ownerReference to the object that would own the pod (so a Job's pods look like a Job's).
import { createHash } from 'node:crypto';
import type { PodTarget } from '../../src/cli/documents.ts';

type Obj = Record<string, any>;

const isObject = (value: unknown): value is Obj => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The owner a controller sets on the pods it creates, by the kind of the workload. */
const OWNER: Readonly<Record<string, { apiVersion: string; kind: string }>> = {
  Deployment: { apiVersion: 'apps/v1', kind: 'ReplicaSet' },
  ReplicaSet: { apiVersion: 'apps/v1', kind: 'ReplicaSet' },
  StatefulSet: { apiVersion: 'apps/v1', kind: 'StatefulSet' },
  DaemonSet: { apiVersion: 'apps/v1', kind: 'DaemonSet' },
  Job: { apiVersion: 'batch/v1', kind: 'Job' },
  CronJob: { apiVersion: 'batch/v1', kind: 'Job' },
  ReplicationController: { apiVersion: 'v1', kind: 'ReplicationController' },
};

/** A short hash like the ones controllers put in names and labels. */
const hashOf = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 10);

/** A UUID derived from `seed`, so the same target gives the same pod (twins compare equal). */
function uuidOf(seed: string): string {
  const hex = createHash('sha256').update(seed).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/**
 * Returns the Pod to create for `target` in `namespace`: a Pod document as written (its namespace
 * replaced), or a pod template as its controller would turn it into a Pod.
 */
export function podForTarget(target: PodTarget, namespace: string): Obj {
  const source = structuredClone(target.pod) as Obj;
  const metadata: Obj = isObject(source['metadata']) ? { ...source['metadata'] } : {};
  const spec: Obj = isObject(source['spec']) ? source['spec'] : {};
  if (target.kind === 'Pod') {
    return { ...source, apiVersion: 'v1', kind: 'Pod', metadata: { ...metadata, namespace } };
  }
  const owner = OWNER[target.kind] ?? { apiVersion: 'v1', kind: target.kind };
  const workload = target.name === '' ? 'workload' : target.name;
  const templateHash = hashOf(JSON.stringify(source));
  const labels: Obj = isObject(metadata['labels']) ? { ...metadata['labels'] } : {};
  let ownerName = workload;
  const podMetadata: Obj = { ...metadata, namespace };
  delete podMetadata['name'];
  delete podMetadata['creationTimestamp'];
  const podSpec: Obj = { ...spec };
  switch (target.kind) {
    case 'Deployment':
      ownerName = `${workload}-${templateHash}`;
      labels['pod-template-hash'] = templateHash;
      podMetadata['generateName'] = `${ownerName}-`;
      break;
    case 'StatefulSet':
      // Pods are named <set>-<ordinal>; the pod's hostname is its name, in the set's service.
      podMetadata['name'] = `${workload}-0`;
      labels['controller-revision-hash'] = `${workload}-${templateHash}`;
      labels['statefulset.kubernetes.io/pod-name'] = `${workload}-0`;
      podSpec['hostname'] ??= `${workload}-0`;
      break;
    case 'Job':
    case 'CronJob': {
      const uid = uuidOf(`job/${workload}/${templateHash}`);
      ownerName = target.kind === 'CronJob' ? `${workload}-28000000` : workload;
      labels['controller-uid'] = uid;
      labels['job-name'] = ownerName;
      podMetadata['generateName'] = `${ownerName}-`;
      break;
    }
    case 'DaemonSet':
      labels['controller-revision-hash'] = templateHash;
      labels['pod-template-generation'] = '1';
      podMetadata['generateName'] = `${workload}-`;
      break;
    default:
      podMetadata['generateName'] = `${workload}-`;
  }
  podMetadata['labels'] = labels;
  podMetadata['ownerReferences'] = [{ ...owner, name: ownerName, uid: uuidOf(`${owner.kind}/${ownerName}/${templateHash}`), controller: true, blockOwnerDeletion: true }];
  return { apiVersion: 'v1', kind: 'Pod', metadata: podMetadata, spec: podSpec };
}

/** The key the webhook's log names a pod by: its name, or its generateName before the API server names it. */
export function podLogName(pod: Obj): string {
  const metadata = isObject(pod['metadata']) ? pod['metadata'] : {};
  return String(metadata['name'] ?? metadata['generateName'] ?? '');
}

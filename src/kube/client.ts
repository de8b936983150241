// Access to the Kubernetes API: a KubeConfig from the pod's service account, $KUBECONFIG or
// ~/.kube/config — or none, so that running without a cluster never waits on a default address.
import { KubeConfig } from '@kubernetes/client-node';
import { findKubeConfigSources } from './sources.ts';

/** Returns a KubeConfig when one is available here (in-cluster or a kubeconfig file), else undefined. */
export function loadKubeConfig(env: Readonly<Record<string, string | undefined>> = process.env): KubeConfig | undefined {
  const sources = findKubeConfigSources(env);
  if (sources === undefined) return undefined;
  // The same order as kubectl (and client-node's loadFromDefault), but read from `env` rather than
  // process.env: $KUBECONFIG files merged, else ~/.kube/config, else the pod's service account.
  const kc = new KubeConfig();
  const [first, ...more] = sources.kubeconfigFiles;
  if (first !== undefined) {
    kc.loadFromFile(first);
    for (const file of more) {
      const other = new KubeConfig();
      other.loadFromFile(file);
      kc.mergeConfig(other);
    }
  } else if (sources.homeConfig !== undefined) {
    kc.loadFromFile(sources.homeConfig);
  } else {
    kc.loadFromCluster();
  }
  return kc.getCurrentCluster() === null ? undefined : kc;
}

/** Rejects after `ms` unless `promise` settles first. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    timer.unref();
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

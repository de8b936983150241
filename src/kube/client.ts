// Access to the Kubernetes API: a KubeConfig from the pod's service account, $KUBECONFIG or
// ~/.kube/config — or none, so that running without a cluster never waits on a default address.
import { existsSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import { UsageError } from '../errors.ts';
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

/** Which kubeconfig a command uses: kubectl's `--kubeconfig` and `--context`, or their defaults. */
export interface KubeConfigChoice {
  readonly kubeconfig?: string | undefined;
  readonly context?: string | undefined;
}

/**
 * Returns the KubeConfig a command asked for (`--kubeconfig FILE`, else $KUBECONFIG, then
 * ~/.kube/config, then the pod's service account; `--context NAME`, else the current context), or
 * throws a UsageError saying what is missing.
 */
export function chooseKubeConfig(choice: KubeConfigChoice, env: Readonly<Record<string, string | undefined>> = process.env): KubeConfig {
  let kc: KubeConfig | undefined;
  if (choice.kubeconfig !== undefined) {
    if (!existsSync(choice.kubeconfig)) throw new UsageError(`--kubeconfig: no such file ${choice.kubeconfig}`);
    kc = new KubeConfig();
    try {
      kc.loadFromFile(choice.kubeconfig);
    } catch (error) {
      throw new UsageError(`--kubeconfig ${choice.kubeconfig}: not a kubeconfig (${(error as Error).message.split('\n')[0]})`);
    }
  } else {
    try {
      kc = loadKubeConfig(env);
    } catch (error) {
      throw new UsageError(`cannot read the kubeconfig: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  if (kc === undefined) throw new UsageError('no cluster configured: set KUBECONFIG or pass --kubeconfig');
  if (choice.context !== undefined) {
    if (kc.getContextObject(choice.context) === null) throw new UsageError(`--context: the kubeconfig has no context ${JSON.stringify(choice.context)}`);
    kc.setCurrentContext(choice.context);
  }
  if (kc.getCurrentCluster() === null) throw new UsageError('the kubeconfig has no current cluster');
  return kc;
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

// Where a KubeConfig would come from — the pod's service account, $KUBECONFIG or ~/.kube/config —
// found without loading @kubernetes/client-node, so that running without a cluster never pays for it.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** The service account token a pod's kubelet mounts. */
const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/** The sources of a KubeConfig present here, in kubectl's order of use; none when no cluster is configured. */
export interface KubeConfigSources {
  /** $KUBECONFIG's files that exist, merged in order. */
  readonly kubeconfigFiles: readonly string[];
  /** ~/.kube/config, when it exists. */
  readonly homeConfig: string | undefined;
  /** Whether this runs in a pod with a service account token. */
  readonly inCluster: boolean;
}

/** Returns the KubeConfig sources present, or undefined when there is none. */
export function findKubeConfigSources(env: Readonly<Record<string, string | undefined>> = process.env): KubeConfigSources | undefined {
  const inCluster = Boolean(env['KUBERNETES_SERVICE_HOST']) && existsSync(SERVICE_ACCOUNT_TOKEN);
  const kubeconfigFiles = (env['KUBECONFIG'] ?? '').split(':').filter((f) => f !== '' && existsSync(f));
  const home = join(env['HOME'] ?? homedir(), '.kube', 'config');
  const homeConfig = existsSync(home) ? home : undefined;
  if (!inCluster && kubeconfigFiles.length === 0 && homeConfig === undefined) return undefined;
  return { kubeconfigFiles, homeConfig, inCluster };
}

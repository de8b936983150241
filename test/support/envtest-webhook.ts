// The webhook as `npm start` runs it, for the real-API-server suites: `envoy-injector serve` in a
// child process (src/main.ts through tsx) with a config file, on a free port, its JSON log lines
// kept; and the MutatingWebhookConfiguration of manifests/ pointed at it by URL with its CA.
import { Buffer } from 'node:buffer';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments, stringify as stringifyYaml } from 'yaml';
import { childEnv, freePorts, ManagedProcess, waitFor } from './envtest.ts';
import { get as httpsGet } from 'node:https';

const ROOT = new URL('../../', import.meta.url).pathname;
const MAIN = join(ROOT, 'src/main.ts');

/** A running `envoy-injector serve`. */
export interface ServeProcess {
  readonly url: string;
  readonly port: number;
  /** PEM of the CA of its certificate (local mode: `<certDir>/ca.crt`). */
  readonly caPem: string;
  readonly configFile: string;
  /** Every JSON line it logged so far. */
  readonly lines: Record<string, any>[];
  /** The `envoy-injector listening` line. */
  readonly listening: Record<string, any>;
  /** The `admission` lines logged so far for pods of `namespace`. */
  admissions(namespace: string): Record<string, any>[];
  /** The last lines of its output, for error messages. */
  tail(lines?: number): string;
  stop(): Promise<void>;
}

/**
 * Starts `envoy-injector serve -c <dir>/config.yaml` with `config` (YAML keys; server.port is a free
 * port, tls local into `<dir>/certs` unless given) and `env` (e.g. KUBECONFIG), and waits until
 * /readyz answers 200 over TLS verified with its CA.
 */
export async function startServe(dir: string, config: Record<string, any>, env: Record<string, string> = {}): Promise<ServeProcess> {
  for (let attempt = 1; ; attempt++) {
    const [port] = (await freePorts(1)) as [number];
    const host = config['server']?.host ?? '127.0.0.1';
    const full = {
      ...config,
      server: { ...config['server'], host, port },
      tls: { mode: 'local', certDir: join(dir, 'certs'), ...config['tls'] },
    };
    const configFile = join(dir, 'config.yaml');
    writeFileSync(configFile, stringifyYaml(full));
    const child = new ManagedProcess('envoy-injector serve', process.execPath, ['--import', 'tsx', MAIN, 'serve', '-c', configFile], childEnv(env), ROOT);
    const lines: Record<string, any>[] = [];
    child.onLine((text) => {
      try {
        lines.push(JSON.parse(text) as Record<string, any>);
      } catch {
        lines.push({ msg: text, notJson: true });
      }
    });
    try {
      const exited = () => (child.exited ? `it exited with code ${child.exitCode}` : undefined);
      const listening = await waitFor('envoy-injector serve to listen', () => lines.find((l) => l['msg'] === 'envoy-injector listening'), {
        timeoutMs: 90_000,
        detail: () => child.tail(20),
        giveUpIf: exited,
      });
      const caPem = readFileSync(join(full.tls.certDir, 'ca.crt'), 'utf8');
      await waitFor('envoy-injector serve to be ready', async () => (await statusOf(`https://${host}:${port}/readyz`, caPem)) === 200, {
        timeoutMs: 30_000,
        detail: () => child.tail(20),
        giveUpIf: exited,
      });
      return {
        url: `https://${host}:${port}`,
        port,
        caPem,
        configFile,
        lines,
        listening,
        admissions: (namespace) => lines.filter((l) => l['msg'] === 'admission' && l['namespace'] === namespace),
        tail: (n = 30) => child.tail(n),
        stop: () => child.stop(),
      };
    } catch (error) {
      await child.stop();
      // A port taken between finding it free and binding it: try another.
      if (attempt < 3 && /EADDRINUSE/.test(child.output())) continue;
      throw error;
    }
  }
}

/** GETs `url` verifying its certificate (address included) against `caPem`; resolves with the status. */
export function statusOf(url: string, caPem: string): Promise<number> {
  return new Promise((resolveStatus, reject) => {
    const req = httpsGet(url, { ca: caPem, timeout: 5000, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolveStatus(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer`)));
    req.on('error', reject);
  });
}

/** The MutatingWebhookConfiguration of manifests/ as written there. */
export function manifestWebhookConfiguration(): Record<string, any> {
  const text = readFileSync(join(ROOT, 'manifests/mutatingwebhookconfiguration.yaml'), 'utf8');
  return parseAllDocuments(text)[0]?.toJS() as Record<string, any>;
}

/**
 * Returns the MutatingWebhookConfiguration of manifests/ with every webhook calling `url` (path
 * /mutate) and trusting `caPem`, instead of the in-cluster Service: same rules, selectors,
 * reinvocationPolicy, failurePolicy and timeouts.
 */
export function webhookConfigurationByUrl(url: string, caPem: string, name?: string): Record<string, any> {
  const mwc = manifestWebhookConfiguration();
  if (name !== undefined) mwc['metadata'] = { ...mwc['metadata'], name };
  for (const webhook of mwc['webhooks'] as Record<string, any>[]) {
    webhook['clientConfig'] = { url: `${url}/mutate`, caBundle: Buffer.from(caPem).toString('base64') };
  }
  return mwc;
}

/** Whether a metav1.LabelSelector matches `labels` (an absent selector matches everything). */
export function labelSelectorMatches(selector: Record<string, any> | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (selector === undefined || selector === null) return true;
  const matchLabels: Record<string, string> = selector['matchLabels'] ?? {};
  if (!Object.entries(matchLabels).every(([key, value]) => labels[key] === value)) return false;
  return ((selector['matchExpressions'] ?? []) as { key: string; operator: string; values?: string[] }[]).every(({ key, operator, values = [] }) => {
    const value = labels[key];
    switch (operator) {
      case 'In':
        return value !== undefined && values.includes(value);
      case 'NotIn':
        return value === undefined || !values.includes(value);
      case 'Exists':
        return value !== undefined;
      case 'DoesNotExist':
        return value === undefined;
      default:
        throw new Error(`unknown label selector operator ${operator}`);
    }
  });
}

/**
 * Returns the names of the webhooks of `mwc` the API server calls for a pod CREATE with these
 * namespace and pod labels (its namespaceSelector sees the namespace's labels, which always
 * include kubernetes.io/metadata.name).
 */
export function webhooksCalled(mwc: Record<string, any>, namespace: string, namespaceLabels: Readonly<Record<string, string>>, podLabels: Readonly<Record<string, string>>): string[] {
  const nsLabels = { ...namespaceLabels, 'kubernetes.io/metadata.name': namespace };
  return (mwc['webhooks'] as Record<string, any>[])
    .filter((w) => labelSelectorMatches(w['namespaceSelector'], nsLabels) && labelSelectorMatches(w['objectSelector'], podLabels))
    .map((w) => String(w['name']));
}

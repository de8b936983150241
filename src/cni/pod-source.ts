// How the CNI plugin reads one pod from the API server: with the kubeconfig the node agent writes
// (its ServiceAccount's token and the cluster CA), one GET, a time limit and one retry. Plain
// node:https rather than the Kubernetes client: the plugin runs for every pod on the node, and
// loading the client would cost more than the whole request.
import { request } from 'node:https';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';

/** Time limit of one request to the API server. */
export const API_TIMEOUT_MS = 5000;
/** Requests made at most: the first and one retry (network errors, 429 and 5xx only). */
const ATTEMPTS = 2;

/** What the plugin needs of a kubeconfig: where the API server is and how to authenticate. */
export interface ApiAccess {
  readonly server: string;
  readonly ca: string | undefined;
  readonly token: string | undefined;
  readonly insecure: boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Reads the current context's cluster and user of a kubeconfig file; throws with one line. */
export function readKubeconfig(path: string): ApiAccess {
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new Error(`cannot read the kubeconfig ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  if (!isObject(doc)) throw new Error(`${path} is not a kubeconfig`);
  const named = (list: unknown, name: unknown, field: string): Record<string, unknown> => {
    const items = Array.isArray(list) ? list.filter(isObject) : [];
    const item = (name === undefined ? items[0] : items.find((i) => i['name'] === name)) ?? {};
    return isObject(item[field]) ? (item[field] as Record<string, unknown>) : {};
  };
  const context = named(doc['contexts'], doc['current-context'], 'context');
  const cluster = named(doc['clusters'], context['cluster'], 'cluster');
  const user = named(doc['users'], context['user'], 'user');
  const server = cluster['server'];
  if (typeof server !== 'string' || !server.startsWith('https://')) throw new Error(`${path}: the cluster has no https:// server`);
  const base = dirname(path);
  const file = (value: unknown): string | undefined => (typeof value === 'string' ? readFileSync(resolve(base, value), 'utf8') : undefined);
  const data = (value: unknown): string | undefined => (typeof value === 'string' ? Buffer.from(value, 'base64').toString('utf8') : undefined);
  const token = typeof user['token'] === 'string' ? user['token'] : file(user['tokenFile'])?.trim();
  return {
    server: server.replace(/\/+$/, ''),
    ca: data(cluster['certificate-authority-data']) ?? file(cluster['certificate-authority']),
    token,
    insecure: cluster['insecure-skip-tls-verify'] === true,
  };
}

/** What a lookup found: the pod's JSON, no such pod, or why the API server could not be asked. */
export type PodLookup =
  | { readonly found: true; readonly pod: unknown }
  | { readonly found: false }
  | { readonly error: string };

function getOnce(access: ApiAccess, path: string, timeoutMs: number): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((done) => {
    const url = new URL(access.server + path);
    const req = request(
      url,
      {
        method: 'GET',
        headers: { Accept: 'application/json', ...(access.token === undefined ? {} : { Authorization: `Bearer ${access.token}` }) },
        ...(access.ca === undefined ? {} : { ca: access.ca }),
        rejectUnauthorized: !access.insecure,
        timeout: timeoutMs,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
          // A pod is far below this; anything larger is not an answer to trust.
          if (body.length > 4 * 1024 * 1024) req.destroy(new Error('response too large'));
        });
        res.on('end', () => done({ status: res.statusCode ?? 0, body }));
        res.on('error', (error) => done({ error: error.message }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (error: NodeJS.ErrnoException) => done({ error: error.code ?? error.message }));
    req.end();
  });
}

/** Reads pod `namespace/name`: at most two requests of API_TIMEOUT_MS each. */
export async function getPod(access: ApiAccess, namespace: string, name: string, timeoutMs = API_TIMEOUT_MS): Promise<PodLookup> {
  const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`;
  let last = '';
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    const answer = await getOnce(access, path, timeoutMs);
    if ('error' in answer) last = answer.error;
    else if (answer.status === 200) {
      try {
        return { found: true, pod: JSON.parse(answer.body) };
      } catch {
        return { error: 'the API server answered with something that is not JSON' };
      }
    } else if (answer.status === 404) return { found: false };
    else {
      let message = '';
      try {
        const status = JSON.parse(answer.body) as { message?: unknown };
        if (typeof status.message === 'string') message = `: ${status.message}`;
      } catch {
        // not a Status body
      }
      last = `HTTP ${answer.status}${message}`;
      // Only overload and server faults are worth a second try; a refusal stays a refusal.
      if (answer.status !== 429 && answer.status < 500) return { error: last };
    }
  }
  return { error: last };
}

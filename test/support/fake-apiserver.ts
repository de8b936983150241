// An in-process stand-in for the Kubernetes API server, for the endpoints envoy-injector uses. It
// speaks the real wire format over real HTTPS — paths, bearer-token authentication, JSON bodies with
// Content-Type application/json, metadata.resourceVersion with optimistic concurrency on update,
// metav1.Status bodies with the API server's reasons and messages (NotFound, AlreadyExists, Conflict,
// Forbidden, Invalid, MethodNotAllowed, Unauthorized) — so client-node runs unmodified against it
// through a real KubeConfig. Objects are kept as the JSON they were written as (fields it does not
// know survive, as a newer API server's own fields would).
import { Buffer } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { KubeConfig } from '@kubernetes/client-node';
import { stringify as stringifyYaml } from 'yaml';
import { generateBundle } from '../../src/tls/certificates.ts';

/** A JSON object as stored and served. */
export type KubeObject = Record<string, any>;

/** A resource the server knows: its URL segment, group/version, kind and scope. */
interface ResourceType {
  readonly resource: string;
  readonly group: string;
  readonly version: string;
  readonly kind: string;
  readonly namespaced: boolean;
}

const RESOURCES: readonly ResourceType[] = [
  { resource: 'secrets', group: '', version: 'v1', kind: 'Secret', namespaced: true },
  { resource: 'pods', group: '', version: 'v1', kind: 'Pod', namespaced: true },
  { resource: 'services', group: '', version: 'v1', kind: 'Service', namespaced: true },
  { resource: 'namespaces', group: '', version: 'v1', kind: 'Namespace', namespaced: false },
  { resource: 'nodes', group: '', version: 'v1', kind: 'Node', namespaced: false },
  { resource: 'endpointslices', group: 'discovery.k8s.io', version: 'v1', kind: 'EndpointSlice', namespaced: true },
  {
    resource: 'mutatingwebhookconfigurations',
    group: 'admissionregistration.k8s.io',
    version: 'v1',
    kind: 'MutatingWebhookConfiguration',
    namespaced: false,
  },
];

/** One request as the server saw it, for assertions (e.g. "no write happened"). */
export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly resource: string;
  readonly namespace: string | undefined;
  readonly name: string | undefined;
  readonly status: number;
}

/** What a hook sees of a request before the server handles it. */
export interface FakeRequest {
  readonly method: string;
  /** The URL path, e.g. `/version` or `/api/v1/nodes`. */
  readonly path: string;
  /** The resource (`secrets`, `nodes`, …), or `version` for GET /version. */
  readonly resource: string;
  readonly namespace: string | undefined;
  readonly name: string | undefined;
  readonly body: KubeObject | undefined;
}

/** A failure a hook makes the server answer with instead of handling the request. */
export interface InjectedFailure {
  readonly status: number;
  readonly reason: string;
  readonly message: string;
}

/** A running fake API server, with direct access to its objects for setup and assertions. */
export interface FakeApiServer {
  readonly url: string;
  /** PEM of the CA that signed the server's certificate. */
  readonly caPem: string;
  readonly token: string;
  readonly requests: RecordedRequest[];
  /**
   * Called before each API request is handled; may change stored objects (a concurrent writer) or
   * return a failure to answer with.
   */
  hook: ((request: FakeRequest) => InjectedFailure | void | Promise<InjectedFailure | void>) | undefined;
  /** A KubeConfig for this server (token auth, CA data), as a kubeconfig file would give. */
  kubeConfig(token?: string): KubeConfig;
  /** Writes a kubeconfig file for this server (for the CLI run as a process). */
  writeKubeconfig(path: string): void;
  /** Returns a copy of a stored object, or undefined. */
  get(resource: string, namespace: string | undefined, name: string): KubeObject | undefined;
  /** Stores an object as a client's create or update would (metadata filled in, resourceVersion bumped). */
  put(resource: string, object: KubeObject): KubeObject;
  /** Removes an object; returns whether it existed. */
  remove(resource: string, namespace: string | undefined, name: string): boolean;
  /** Forgets every object, recorded request and hook. */
  reset(): void;
  /** Writes (POST/PUT) made so far to a resource, optionally only those that succeeded. */
  writes(resource: string, options?: { succeeded?: boolean }): RecordedRequest[];
  close(): Promise<void>;
}

const STATUS_REASON: Readonly<Record<number, string>> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
  415: 'UnsupportedMediaType',
  422: 'Invalid',
  500: 'InternalError',
};

/** The metav1.Status the API server sends with every failure. */
function status(code: number, reason: string, message: string, details?: KubeObject): KubeObject {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details === undefined ? {} : { details }),
    code,
  };
}

/** `secrets` or `mutatingwebhookconfigurations.admissionregistration.k8s.io`, as messages name them. */
const qualified = (type: ResourceType) => (type.group === '' ? type.resource : `${type.resource}.${type.group}`);

const details = (type: ResourceType, name: string) => ({ name, ...(type.group === '' ? {} : { group: type.group }), kind: type.resource });

/** Parses a label selector of the forms the API accepts (=, ==, !=, in, notin, exists, !exists). */
function selectorMatches(selector: string, labels: Record<string, string>): boolean {
  const requirements = selector.match(/([^,(]+(\([^)]*\))?)/g) ?? [];
  return requirements.every((raw) => {
    const req = raw.trim();
    if (req === '') return true;
    let m = /^(\S+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(req);
    if (m) {
      const values = (m[3] ?? '').split(',').map((v) => v.trim());
      const value = labels[m[1] as string];
      return m[2] === 'in' ? value !== undefined && values.includes(value) : value === undefined || !values.includes(value);
    }
    m = /^([^=!]+)(==|=|!=)(.*)$/.exec(req);
    if (m) {
      const value = labels[(m[1] as string).trim()];
      return m[2] === '!=' ? value !== (m[3] as string).trim() : value === (m[3] as string).trim();
    }
    if (req.startsWith('!')) return labels[req.slice(1)] === undefined;
    return labels[req] !== undefined;
  });
}

/** Starts the server on 127.0.0.1 with a fresh CA; `token` is the bearer token it accepts. */
export async function startFakeApiServer(
  options: { token?: string; version?: { major: string; minor: string; gitVersion?: string } } = {},
): Promise<FakeApiServer> {
  const token = options.token ?? 'test-token';
  const version = options.version ?? { major: '1', minor: '31' };
  const tls = await generateBundle(['127.0.0.1', 'localhost']);
  const objects = new Map<string, KubeObject>();
  const requests: RecordedRequest[] = [];
  let resourceVersion = 1000;
  const key = (resource: string, namespace: string | undefined, name: string) => `${resource}|${namespace ?? ''}|${name}`;
  const typeOf = (resource: string) => {
    const type = RESOURCES.find((t) => t.resource === resource);
    if (type === undefined) throw new Error(`fake API server: unknown resource ${resource}`);
    return type;
  };

  /** Fills in what the API server sets on every write and stores the object. */
  function store(type: ResourceType, object: KubeObject, previous: KubeObject | undefined): KubeObject {
    const copy = structuredClone(object);
    copy['apiVersion'] = type.group === '' ? type.version : `${type.group}/${type.version}`;
    copy['kind'] = type.kind;
    const metadata = (copy['metadata'] ??= {});
    metadata.uid = previous?.['metadata']?.uid ?? randomUUID();
    metadata.creationTimestamp = previous?.['metadata']?.creationTimestamp ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    metadata.resourceVersion = String(++resourceVersion);
    if (type.kind === 'Secret') {
      // The API server folds stringData into data and never returns it.
      const stringData = copy['stringData'] as Record<string, string> | undefined;
      if (stringData !== undefined) {
        copy['data'] = { ...(copy['data'] ?? {}) };
        for (const [k, v] of Object.entries(stringData)) copy['data'][k] = Buffer.from(v).toString('base64');
        delete copy['stringData'];
      }
      copy['type'] ??= 'Opaque';
    }
    objects.set(key(type.resource, type.namespaced ? metadata.namespace : undefined, metadata.name), copy);
    return structuredClone(copy);
  }

  /** Field validation the real API server does for the objects written here. */
  function invalid(type: ResourceType, object: KubeObject): string | undefined {
    if (type.kind !== 'Secret') return undefined;
    const data = (object['data'] ?? {}) as Record<string, unknown>;
    for (const [k, v] of Object.entries(data)) {
      if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) return `data[${k}]: Invalid value: illegal base64 data`;
    }
    if (object['type'] === 'kubernetes.io/tls') {
      for (const required of ['tls.crt', 'tls.key']) if (data[required] === undefined) return `data[${required}]: Required value`;
    }
    return undefined;
  }

  async function readBody(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  async function handle(req: IncomingMessage): Promise<{ code: number; body: KubeObject; resource: string; namespace?: string; name?: string }> {
    const url = new URL(req.url ?? '/', 'https://fake');
    const method = req.method ?? 'GET';
    if (req.headers.authorization !== `Bearer ${token}`) return { code: 401, body: status(401, 'Unauthorized', 'Unauthorized'), resource: '' };
    if (url.pathname === '/version') {
      // version.Info, as k8s.io/apimachinery serves it (open to every authenticated client).
      const failure = await fake.hook?.({ method, path: url.pathname, resource: 'version', namespace: undefined, name: undefined, body: undefined });
      if (failure) return { code: failure.status, body: status(failure.status, failure.reason, failure.message), resource: 'version' };
      return {
        code: 200,
        body: {
          major: version.major,
          minor: version.minor,
          gitVersion: version.gitVersion ?? `v${version.major}.${version.minor}.0`,
          gitCommit: '0000000000000000000000000000000000000000',
          gitTreeState: 'clean',
          buildDate: '2025-01-01T00:00:00Z',
          goVersion: 'go1.23.4',
          compiler: 'gc',
          platform: 'linux/amd64',
        },
        resource: 'version',
      };
    }
    // /api/v1/... or /apis/<group>/<version>/...; then [namespaces/<ns>/]<resource>[/<name>]
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    const [root] = parts;
    const group = root === 'api' ? '' : (parts[1] ?? '');
    const rest = root === 'api' ? parts.slice(2) : parts.slice(3);
    let namespace: string | undefined;
    let resource: string;
    let name: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      namespace = rest[1];
      resource = rest[2] ?? '';
      name = rest[3];
    } else {
      resource = rest[0] ?? '';
      name = rest[1];
    }
    const type = RESOURCES.find((t) => t.resource === resource && t.group === group);
    if (type === undefined || rest.length > (namespace === undefined ? 2 : 4)) {
      return { code: 404, body: status(404, 'NotFound', 'the server could not find the requested resource'), resource };
    }
    const bodyText = method === 'POST' || method === 'PUT' ? await readBody(req) : '';
    let body: KubeObject | undefined;
    if (bodyText !== '') {
      if (!/^application\/json/.test(req.headers['content-type'] ?? '')) {
        return { code: 415, body: status(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf`), resource };
      }
      try {
        body = JSON.parse(bodyText) as KubeObject;
      } catch (error) {
        return { code: 400, body: status(400, 'BadRequest', `the object provided is unrecognized (${(error as Error).message})`), resource };
      }
    }
    const failure = await fake.hook?.({ method, path: url.pathname, resource, namespace, name, body });
    if (failure) {
      // A refusal names what was refused, as the API server's authorizer does (details.kind is the resource).
      const refused = failure.reason === 'Forbidden' ? { kind: resource, ...(name === undefined ? {} : { name }) } : undefined;
      return {
        code: failure.status,
        body: status(failure.status, failure.reason, failure.message, refused),
        resource,
        ...(namespace === undefined ? {} : { namespace }),
        ...(name === undefined ? {} : { name }),
      };
    }
    const at = { resource, ...(namespace === undefined ? {} : { namespace }), ...(name === undefined ? {} : { name }) };

    if (method === 'GET' && name !== undefined) {
      const found = objects.get(key(resource, namespace, name));
      if (found === undefined) return { code: 404, body: status(404, 'NotFound', `${qualified(type)} "${name}" not found`, details(type, name)), ...at };
      return { code: 200, body: structuredClone(found), ...at };
    }
    if (method === 'GET') {
      const selector = url.searchParams.get('labelSelector') ?? '';
      const all = [...objects.entries()]
        .filter(([k]) => k.startsWith(`${resource}|${namespace === undefined ? '' : `${namespace}|`}`))
        .map(([, v]) => v)
        .filter((o) => selectorMatches(selector, (o['metadata']?.labels ?? {}) as Record<string, string>))
        .sort((a, b) => `${a['metadata'].namespace}/${a['metadata'].name}`.localeCompare(`${b['metadata'].namespace}/${b['metadata'].name}`));
      // Paging as the API server does it: `limit`, and an opaque `continue` token.
      const limit = Number(url.searchParams.get('limit') ?? '0');
      const offset = Number(Buffer.from(url.searchParams.get('continue') ?? '', 'base64').toString() || '0');
      const page = limit > 0 ? all.slice(offset, offset + limit) : all.slice(offset);
      const more = limit > 0 && offset + limit < all.length;
      return {
        code: 200,
        body: {
          kind: `${type.kind}List`,
          apiVersion: type.group === '' ? type.version : `${type.group}/${type.version}`,
          metadata: { resourceVersion: String(resourceVersion), ...(more ? { continue: Buffer.from(String(offset + limit)).toString('base64') } : {}) },
          items: page.map((o) => structuredClone(o)),
        },
        ...at,
      };
    }
    if (method === 'POST' && name === undefined && body !== undefined) {
      const objectName = body['metadata']?.name as string | undefined;
      if (!objectName) return { code: 422, body: status(422, 'Invalid', `${type.kind} "" is invalid: metadata.name: Required value: name or generateName is required`), ...at };
      if (type.namespaced && body['metadata']?.namespace !== undefined && body['metadata'].namespace !== namespace) {
        return { code: 400, body: status(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request'), ...at };
      }
      if (objects.has(key(resource, namespace, objectName))) {
        return { code: 409, body: status(409, 'AlreadyExists', `${qualified(type)} "${objectName}" already exists`, details(type, objectName)), ...at, name: objectName };
      }
      const problem = invalid(type, body);
      if (problem !== undefined) return { code: 422, body: status(422, 'Invalid', `${type.kind} "${objectName}" is invalid: ${problem}`, details(type, objectName)), ...at };
      if (type.namespaced) body['metadata'].namespace = namespace;
      return { code: 201, body: store(type, body, undefined), ...at, name: objectName };
    }
    if (method === 'PUT' && name !== undefined && body !== undefined) {
      const previous = objects.get(key(resource, namespace, name));
      if (previous === undefined) return { code: 404, body: status(404, 'NotFound', `${qualified(type)} "${name}" not found`, details(type, name)), ...at };
      if (body['metadata']?.name !== name) {
        return { code: 400, body: status(400, 'BadRequest', 'the name of the object does not match the name on the URL'), ...at };
      }
      const expected = body['metadata']?.resourceVersion as string | undefined;
      // Optimistic concurrency: a resourceVersion that is not the current one is a Conflict. (Without
      // one the update is unconditional, which these resources allow.)
      if (expected !== undefined && expected !== '' && expected !== previous['metadata'].resourceVersion) {
        return {
          code: 409,
          body: status(
            409,
            'Conflict',
            `Operation cannot be fulfilled on ${qualified(type)} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
            details(type, name),
          ),
          ...at,
        };
      }
      const problem = invalid(type, body);
      if (problem !== undefined) return { code: 422, body: status(422, 'Invalid', `${type.kind} "${name}" is invalid: ${problem}`, details(type, name)), ...at };
      if (type.namespaced) body['metadata'].namespace = namespace;
      return { code: 200, body: store(type, body, previous), ...at };
    }
    return { code: 405, body: status(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`), ...at };
  }

  const server: Server = createServer({ key: tls.key, cert: tls.cert }, (req: IncomingMessage, res: ServerResponse) => {
    handle(req).then(
      (result) => {
        requests.push({
          method: req.method ?? '',
          path: req.url ?? '',
          resource: result.resource,
          namespace: result.namespace,
          name: result.name,
          status: result.code,
        });
        const text = JSON.stringify(result.body);
        res.writeHead(result.code, {
          'Content-Type': 'application/json',
          'Content-Length': Buffer.byteLength(text),
          'Cache-Control': 'no-cache, private',
          'Audit-Id': randomUUID(),
        });
        res.end(text);
      },
      (error: unknown) => {
        const text = JSON.stringify(status(500, STATUS_REASON[500] as string, (error as Error).message));
        res.writeHead(500, { 'Content-Type': 'application/json' });
        res.end(text);
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const url = `https://127.0.0.1:${port}`;

  const kubeconfigObject = (tokenToUse: string) => ({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'fake', cluster: { server: url, 'certificate-authority-data': Buffer.from(tls.caCert).toString('base64') } }],
    users: [{ name: 'admin', user: { token: tokenToUse } }],
    contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'admin' } }],
    'current-context': 'fake',
  });

  const fake: FakeApiServer = {
    url,
    caPem: tls.caCert,
    token,
    requests,
    hook: undefined,
    kubeConfig(tokenToUse = token) {
      const kc = new KubeConfig();
      kc.loadFromString(JSON.stringify(kubeconfigObject(tokenToUse)));
      return kc;
    },
    writeKubeconfig(path) {
      writeFileSync(path, stringifyYaml(kubeconfigObject(token)));
    },
    get(resource, namespace, name) {
      const found = objects.get(key(resource, typeOf(resource).namespaced ? namespace : undefined, name));
      return found === undefined ? undefined : structuredClone(found);
    },
    put(resource, object) {
      const type = typeOf(resource);
      const metadata = object['metadata'] as { name: string; namespace?: string };
      return store(type, object, objects.get(key(resource, type.namespaced ? metadata.namespace : undefined, metadata.name)));
    },
    remove(resource, namespace, name) {
      return objects.delete(key(resource, typeOf(resource).namespaced ? namespace : undefined, name));
    },
    reset() {
      objects.clear();
      requests.length = 0;
      fake.hook = undefined;
    },
    writes(resource, opts = {}) {
      return requests.filter(
        (r) => r.resource === resource && (r.method === 'POST' || r.method === 'PUT') && (!opts.succeeded || (r.status >= 200 && r.status < 300)),
      );
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return fake;
}

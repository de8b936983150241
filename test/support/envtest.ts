// A real Kubernetes API server for tests, in controller-runtime's envtest convention: the binaries
// (`kube-apiserver`, `etcd`) are found through KUBEBUILDER_ASSETS, and each test file starts its own
// etcd and kube-apiserver on free loopback ports, with its own PKI, token file, service-account key
// pair and data directory under a temporary directory, and always stops them (and removes the
// directory) when it is done.
//
// KUBEBUILDER_ASSETS names one directory of binaries (the envtest convention), a directory whose
// subdirectories each hold one version (setup-envtest's layout, `k8s/1.30.0-linux-amd64/`), or
// several of either separated by `:`. Every suite declared with `describeApiServers` runs once per
// version found; `test/envtest-assets.sh` prepares the two versions the project tests against and
// prints the value to use:
//
//   export KUBEBUILDER_ASSETS="$(bash test/envtest-assets.sh)" && npm test
//
// Unset or empty: each such suite prints which suite it skipped and how to run it, and node:test
// reports it as skipped with that reason (never silently). Set but unusable (a directory without
// kube-apiserver, no etcd): the suite fails, saying what is missing.
//
// There is no controller-manager, scheduler or kubelet: no controller makes pods, namespaces never
// finish deleting, and each namespace needs its `default` ServiceAccount (createNamespace makes it).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { accessSync, constants as fsConstants, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify as stringifyYaml } from 'yaml';
import { generateBundle } from '../../src/tls/certificates.ts';

/** The environment variable naming the asset directories (envtest convention). */
export const ASSETS_ENV = 'KUBEBUILDER_ASSETS';
/** etcd to use when an asset directory has none (envtest convention), before etcd on PATH. */
export const ETCD_ENV = 'TEST_ASSET_ETCD';
/** How a developer runs the real-API-server suites (printed when they are skipped). */
export const HOW_TO_RUN = `export ${ASSETS_ENV}="$(bash test/envtest-assets.sh)" && npm test   (needs etcd: apt-get install etcd-server; see README "Development")`;

/** Environment variables a child must not see: every request goes to 127.0.0.1 directly. */
const PROXY_VARIABLES = ['HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'ALL_PROXY', 'http_proxy', 'https_proxy', 'no_proxy', 'all_proxy'];

/** The binaries of one Kubernetes version. */
export interface ApiServerAssets {
  /** The directory they were found in. */
  readonly dir: string;
  readonly kubeApiserver: string;
  readonly etcd: string;
  /** `v1.30.0`, from `kube-apiserver --version`. */
  readonly version: string;
  readonly major: number;
  readonly minor: number;
}

/** Why the real-API-server suites cannot run as configured. */
export class EnvtestSetupError extends Error {}

function executable(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function onPath(name: string, env: Readonly<Record<string, string | undefined>>): string | undefined {
  for (const dir of (env['PATH'] ?? '').split(delimiter)) {
    if (dir !== '' && executable(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/**
 * Returns the directories of binaries that `value` (KUBEBUILDER_ASSETS) names: each `:`-separated
 * entry is a directory holding kube-apiserver, or a directory whose subdirectories do (each one a
 * version). Throws an EnvtestSetupError naming an entry that is neither.
 */
export function assetDirectories(value: string, exists: (path: string) => boolean = existsSync, list: (dir: string) => string[] = readdirSync): string[] {
  const dirs: string[] = [];
  for (const entry of value.split(':').filter((e) => e.trim() !== '')) {
    const dir = resolve(entry.trim());
    if (exists(join(dir, 'kube-apiserver'))) {
      dirs.push(dir);
      continue;
    }
    let children: string[] = [];
    try {
      children = list(dir).sort();
    } catch {
      throw new EnvtestSetupError(`${ASSETS_ENV} names ${dir}, which does not exist or cannot be read`);
    }
    const versions = children.map((child) => join(dir, child)).filter((child) => exists(join(child, 'kube-apiserver')));
    if (versions.length === 0) {
      throw new EnvtestSetupError(`${ASSETS_ENV} names ${dir}, which holds no kube-apiserver (nor subdirectories that do)`);
    }
    dirs.push(...versions);
  }
  return dirs;
}

/** Parses `Kubernetes v1.30.0` (what `kube-apiserver --version` prints). */
export function parseKubeVersion(text: string): { version: string; major: number; minor: number } | undefined {
  const match = /\bv(\d+)\.(\d+)\.\d+\S*/.exec(text);
  return match === null ? undefined : { version: match[0], major: Number(match[1]), minor: Number(match[2]) };
}

/** Returns the binaries of every version KUBEBUILDER_ASSETS names, oldest first; throws when one is unusable. */
export function resolveAssets(env: Readonly<Record<string, string | undefined>> = process.env): ApiServerAssets[] {
  const value = env[ASSETS_ENV] ?? '';
  if (value.trim() === '') return [];
  const assets = assetDirectories(value).map((dir): ApiServerAssets => {
    const kubeApiserver = join(dir, 'kube-apiserver');
    if (!executable(kubeApiserver)) throw new EnvtestSetupError(`${kubeApiserver} is not an executable file`);
    const etcd = [join(dir, 'etcd'), env[ETCD_ENV]].find((p): p is string => p !== undefined && p !== '' && executable(p)) ?? onPath('etcd', env);
    if (etcd === undefined) {
      throw new EnvtestSetupError(`no etcd beside ${kubeApiserver}, in ${ETCD_ENV} or on PATH (Debian: apt-get install etcd-server)`);
    }
    let printed: string;
    try {
      printed = execFileSync(kubeApiserver, ['--version'], { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (error) {
      throw new EnvtestSetupError(`${kubeApiserver} --version failed: ${(error as Error).message.split('\n')[0]}`);
    }
    const version = parseKubeVersion(printed);
    if (version === undefined) throw new EnvtestSetupError(`${kubeApiserver} --version printed ${JSON.stringify(printed.trim())}, not a version`);
    return { dir, kubeApiserver, etcd, ...version };
  });
  return assets.sort((a, b) => a.major - b.major || a.minor - b.minor || a.version.localeCompare(b.version));
}

let resolved: { assets: ApiServerAssets[] } | { error: Error } | undefined;
/** The assets of this process (resolved once). */
function processAssets(): { assets: ApiServerAssets[] } | { error: Error } {
  if (resolved === undefined) {
    try {
      resolved = { assets: resolveAssets() };
    } catch (error) {
      resolved = { error: error as Error };
    }
  }
  return resolved;
}

/**
 * A child process in its own process group whose output is kept (the last 64 KiB, for error
 * messages) and read line by line; stop() kills the whole group, and every one still running when
 * this process exits is killed then.
 */
export class ManagedProcess {
  readonly name: string;
  readonly process: ChildProcess;
  #output = '';
  #exit: Promise<number | null>;
  #partial = '';
  readonly #lineListeners: ((line: string) => void)[] = [];
  exited = false;
  exitCode: number | null = null;

  constructor(name: string, command: string, args: readonly string[], env: NodeJS.ProcessEnv, cwd: string) {
    this.name = name;
    // With setpriv, the child is killed when this process dies (even by SIGKILL, where no `after`
    // runs); detached puts it in its own process group, which stop() kills as a whole.
    const setpriv = onPath('setpriv', process.env);
    const [program, argv] = setpriv === undefined ? [command, [...args]] : [setpriv, ['--pdeathsig', 'SIGKILL', '--', command, ...args]];
    this.process = spawn(program, argv, { env, cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(this);
    const keep = (chunk: Buffer) => {
      this.#output += chunk.toString('utf8');
      // The last 64 KiB are plenty to explain a failure.
      if (this.#output.length > 128 * 1024) this.#output = this.#output.slice(-64 * 1024);
    };
    this.process.stdout?.on('data', (chunk: Buffer) => {
      keep(chunk);
      if (this.#lineListeners.length === 0) return;
      const lines = (this.#partial + chunk.toString('utf8')).split('\n');
      this.#partial = lines.pop() ?? '';
      for (const line of lines) for (const listener of this.#lineListeners) listener(line);
    });
    this.process.stderr?.on('data', keep);
    this.#exit = new Promise((resolveExit) => {
      this.process.on('error', (error) => {
        keep(Buffer.from(`\n[${name}: ${error.message}]\n`));
        this.exited = true;
        running.delete(this);
        resolveExit(null);
      });
      this.process.on('exit', (code, signal) => {
        this.exited = true;
        this.exitCode = code;
        running.delete(this);
        if (signal !== null) keep(Buffer.from(`\n[${name} killed by ${signal}]\n`));
        resolveExit(code);
      });
    });
  }

  /** Calls `listener` with every complete line it writes to standard output from now on. */
  onLine(listener: (line: string) => void): void {
    this.#lineListeners.push(listener);
  }

  /** Resolves with the exit code once it has exited. */
  exit(): Promise<number | null> {
    return this.#exit;
  }

  /** The last `lines` lines of its output. */
  tail(lines = 30): string {
    return this.#output.trimEnd().split('\n').slice(-lines).join('\n');
  }

  output(): string {
    return this.#output;
  }

  /** Stops the whole process group: SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.exited || this.process.pid === undefined) return;
    const pid = this.process.pid;
    const signal = (name: NodeJS.Signals) => {
      try {
        process.kill(-pid, name);
      } catch {
        // Already gone.
      }
    };
    signal('SIGTERM');
    const timer = setTimeout(() => signal('SIGKILL'), graceMs);
    await this.#exit;
    clearTimeout(timer);
    // Whatever it started is in its group too.
    signal('SIGKILL');
  }
}

/** Children still running, killed if this process exits without stopping them. */
const running = new Set<ManagedProcess>();
process.on('exit', () => {
  for (const child of running) {
    try {
      if (child.process.pid !== undefined) process.kill(-child.process.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
});

/** Returns the environment for a child: this one without proxy variables, plus `extra`. */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of PROXY_VARIABLES) delete env[name];
  return { ...env, ...extra };
}

/** Returns `count` distinct free TCP ports on `host` (held until all are found, then released). */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => {
      const server = createServer();
      return new Promise<ReturnType<typeof createServer>>((resolveServer, reject) => {
        server.once('error', reject);
        server.listen(0, host, () => resolveServer(server));
      });
    }),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/**
 * Polls `check` every `intervalMs` until it returns a value other than undefined/false; throws after
 * `timeoutMs`, or as soon as `giveUpIf` names a reason (e.g. the process waited on exited).
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  options: { timeoutMs?: number; intervalMs?: number; detail?: () => string; giveUpIf?: () => string | undefined } = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    const hopeless = options.giveUpIf?.();
    if (hopeless !== undefined) {
      const detail = options.detail === undefined ? '' : `\n${options.detail()}`;
      throw new Error(`gave up waiting for ${what}: ${hopeless}${detail}`);
    }
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() >= deadline) {
      const why = last === undefined ? '' : ` (last error: ${(last as Error).message ?? String(last)})`;
      const detail = options.detail === undefined ? '' : `\n${options.detail()}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}${detail}`);
    }
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 200));
  }
}

/** An answer of the API server. */
export interface ApiResponse {
  readonly status: number;
  /** The parsed JSON body (a metav1.Status on failure), or the text when it is not JSON. */
  readonly body: any;
  /** The texts of its `Warning` headers (admission webhooks' warnings among them). */
  readonly warnings: string[];
}

/** Options of one raw API request. */
export interface ApiRequestOptions {
  /** Bearer token (default: the admin's). */
  readonly token?: string;
  readonly contentType?: string;
  readonly timeoutMs?: number;
}

/** Parses the Warning headers (RFC 7234: `299 - "text"`) into their texts. */
export function parseWarningHeaders(values: string | string[] | undefined): string[] {
  const list = values === undefined ? [] : Array.isArray(values) ? values : [values];
  const texts: string[] = [];
  for (const value of list) {
    for (const match of value.matchAll(/\d{3} \S+ "((?:[^"\\]|\\.)*)"/g)) texts.push((match[1] as string).replace(/\\(.)/g, '$1'));
  }
  return texts;
}

/** A running etcd + kube-apiserver. */
export interface Envtest {
  readonly assets: ApiServerAssets;
  /** https://127.0.0.1:PORT */
  readonly url: string;
  readonly caPem: string;
  readonly caFile: string;
  readonly adminToken: string;
  /** A kubeconfig file for the admin (system:masters). */
  readonly kubeconfig: string;
  /** The temporary directory (removed by stop()). */
  readonly dir: string;
  /** The range of Service cluster IPs (inside 127.0.0.0/8: nothing can ever be sent off this machine). */
  readonly serviceClusterIpRange: string;
  /** Writes a kubeconfig file authenticating with `token`; returns its path. */
  writeKubeconfig(name: string, token: string): string;
  /** Sends one request; never throws for an HTTP status. */
  request(method: string, path: string, body?: unknown, options?: ApiRequestOptions): Promise<ApiResponse>;
  /** Sends one request and returns the body; throws with the API server's message unless 2xx. */
  ok(method: string, path: string, body?: unknown, options?: ApiRequestOptions): Promise<any>;
  /** Runs kubectl ($KUBECTL, else kubectl on PATH) against this server (admin unless `kubeconfig`). */
  kubectl(args: readonly string[], options?: { input?: string; kubeconfig?: string; timeoutMs?: number }): Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** Creates a namespace with `labels` and its `default` ServiceAccount. */
  createNamespace(name: string, labels?: Record<string, string>): Promise<void>;
  /** Creates a ServiceAccount unless it exists. */
  ensureServiceAccount(namespace: string, name: string): Promise<void>;
  /** The last lines of the API server's (and etcd's) output. */
  logs(lines?: number): string;
  stop(): Promise<void>;
}

/** Options of startEnvtest. */
export interface EnvtestOptions {
  /** Extra kube-apiserver flags (e.g. an admission configuration). */
  readonly apiServerFlags?: readonly string[];
  /** Time allowed for /readyz (default 120 s: 5–20 s is usual on a loaded 2-core machine). */
  readonly readyTimeoutMs?: number;
}

/** The admission plugins enabled on top of the defaults (as a cluster would have them). */
const ADMISSION_PLUGINS = 'NamespaceLifecycle,ServiceAccount,LimitRanger,ResourceQuota,PodSecurity,MutatingAdmissionWebhook,ValidatingAdmissionWebhook';
const SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc.cluster.local';

/** Starts etcd and kube-apiserver of `assets` and waits until the API server is ready. */
export async function startEnvtest(assets: ApiServerAssets, options: EnvtestOptions = {}): Promise<Envtest> {
  const dir = mkdtempSync(join(tmpdir(), `envtest-${assets.version}-`));
  const children: ManagedProcess[] = [];
  const stopAll = async () => {
    // The API server first, so it does not log etcd's disappearance at length.
    for (const child of [...children].reverse()) await child.stop();
  };
  try {
    const pki = join(dir, 'pki');
    mkdirSync(pki);
    const serving = await generateBundle(['127.0.0.1', 'localhost']);
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const adminToken = randomBytes(24).toString('hex');
    const file = (name: string, text: string) => {
      const path = join(pki, name);
      writeFileSync(path, text, { mode: 0o600 });
      return path;
    };
    const caFile = file('ca.crt', serving.caCert);
    const certFile = file('apiserver.crt', serving.cert);
    const keyFile = file('apiserver.key', serving.key);
    const saKey = file('sa.key', privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    const saPub = file('sa.pub', publicKey.export({ type: 'spki', format: 'pem' }) as string);
    const tokens = file('tokens.csv', `${adminToken},admin,admin-uid,"system:masters"\n`);
    // Cluster IPs on loopback: if anything ever dialled a Service's IP it would stay on this machine.
    const serviceClusterIpRange = `127.${100 + Math.floor(Math.random() * 150)}.0.0/16`;

    let url = '';
    for (let attempt = 1; ; attempt++) {
      const [etcdPort, peerPort, apiPort] = (await freePorts(3)) as [number, number, number];
      const etcdData = join(dir, `etcd-${attempt}`);
      const etcd = new ManagedProcess(
        'etcd',
        assets.etcd,
        [
          '--name=default',
          `--data-dir=${etcdData}`,
          `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
          `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
          `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
          `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
          `--initial-cluster=default=http://127.0.0.1:${peerPort}`,
        ],
        childEnv(),
        dir,
      );
      children.push(etcd);
      const apiserver = new ManagedProcess(
        'kube-apiserver',
        assets.kubeApiserver,
        [
          '--bind-address=127.0.0.1',
          '--advertise-address=127.0.0.1',
          `--secure-port=${apiPort}`,
          `--etcd-servers=http://127.0.0.1:${etcdPort}`,
          `--service-cluster-ip-range=${serviceClusterIpRange}`,
          '--endpoint-reconciler-type=none',
          '--authorization-mode=Node,RBAC',
          `--token-auth-file=${tokens}`,
          `--client-ca-file=${caFile}`,
          `--tls-cert-file=${certFile}`,
          `--tls-private-key-file=${keyFile}`,
          `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
          `--service-account-key-file=${saPub}`,
          `--service-account-signing-key-file=${saKey}`,
          `--api-audiences=${SERVICE_ACCOUNT_ISSUER}`,
          `--enable-admission-plugins=${ADMISSION_PLUGINS}`,
          '--allow-privileged=true',
          '--profiling=false',
          `--cert-dir=${join(dir, 'apiserver-certs')}`,
          ...(options.apiServerFlags ?? []),
        ],
        childEnv(),
        dir,
      );
      children.push(apiserver);
      url = `https://127.0.0.1:${apiPort}`;
      const ready = await waitUntilReady(url, serving.caCert, adminToken, [etcd, apiserver], options.readyTimeoutMs ?? 120_000);
      if (ready === 'ready') break;
      await etcd.stop();
      await apiserver.stop();
      // A port taken between finding it free and binding it: try again with new ones.
      const portTaken = /address already in use/i.test(etcd.output() + apiserver.output());
      if (!portTaken || attempt >= 3) throw new Error(`${ready}\n--- etcd (last lines)\n${etcd.tail(15)}\n--- kube-apiserver (last lines)\n${apiserver.tail(30)}`);
    }

    const envtest: Envtest = {
      assets,
      url,
      caPem: serving.caCert,
      caFile,
      adminToken,
      dir,
      serviceClusterIpRange,
      kubeconfig: '',
      writeKubeconfig(name, token) {
        const path = join(dir, `${name}.kubeconfig`);
        const kubeconfig = {
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [{ name: 'envtest', cluster: { server: url, 'certificate-authority-data': Buffer.from(serving.caCert).toString('base64') } }],
          users: [{ name, user: { token } }],
          contexts: [{ name: 'envtest', context: { cluster: 'envtest', user: name } }],
          'current-context': 'envtest',
        };
        writeFileSync(path, stringifyYaml(kubeconfig), { mode: 0o600 });
        return path;
      },
      request: (method, path, body, requestOptions = {}) => apiRequest(url, serving.caCert, requestOptions.token ?? adminToken, method, path, body, requestOptions),
      async ok(method, path, body, requestOptions) {
        const response = await envtest.request(method, path, body, requestOptions);
        if (response.status < 200 || response.status >= 300) {
          const message = typeof response.body === 'object' && response.body !== null ? response.body.message : String(response.body);
          throw new Error(`${method} ${path}: HTTP ${response.status}: ${message}`);
        }
        return response.body;
      },
      kubectl: (args, kubectlOptions = {}) => runKubectl(args, kubectlOptions.kubeconfig ?? envtest.kubeconfig, kubectlOptions),
      async createNamespace(name, labels = {}) {
        await envtest.ok('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });
        await envtest.ensureServiceAccount(name, 'default');
      },
      async ensureServiceAccount(namespace, name) {
        const response = await envtest.request('POST', `/api/v1/namespaces/${namespace}/serviceaccounts`, {
          apiVersion: 'v1',
          kind: 'ServiceAccount',
          metadata: { name },
        });
        if (response.status !== 201 && response.status !== 409) throw new Error(`creating ServiceAccount ${namespace}/${name}: HTTP ${response.status}: ${response.body?.message}`);
      },
      logs: (lines = 40) => children.map((c) => `--- ${c.name}\n${c.tail(lines)}`).join('\n'),
      async stop() {
        await stopAll();
        rmSync(dir, { recursive: true, force: true });
      },
    };
    (envtest as { kubeconfig: string }).kubeconfig = envtest.writeKubeconfig('admin', adminToken);
    return envtest;
  } catch (error) {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

/** Waits for GET /readyz to answer 200; returns 'ready' or why not (a child exited, or the time ran out). */
async function waitUntilReady(url: string, caPem: string, token: string, children: readonly ManagedProcess[], timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    const dead = children.find((c) => c.exited);
    if (dead !== undefined) return `${dead.name} exited (code ${dead.exitCode}) before the API server was ready`;
    try {
      const response = await apiRequest(url, caPem, token, 'GET', '/readyz', undefined, { timeoutMs: 5000 });
      if (response.status === 200) return 'ready';
      last = `HTTP ${response.status}: ${String(typeof response.body === 'string' ? response.body : JSON.stringify(response.body)).slice(-500)}`;
    } catch (error) {
      last = (error as Error).message;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return `kube-apiserver not ready after ${timeoutMs} ms (last /readyz: ${last})`;
}

/** Sends one HTTPS request to the API server. */
function apiRequest(url: string, caPem: string, token: string, method: string, path: string, body: unknown, options: ApiRequestOptions): Promise<ApiResponse> {
  const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  const target = new URL(path, url);
  return new Promise((resolveResponse, reject) => {
    const req = httpsRequest(
      target,
      {
        method,
        ca: caPem,
        headers: {
          Authorization: `Bearer ${token}`,
          Accept: 'application/json',
          ...(payload === undefined ? {} : { 'Content-Type': options.contentType ?? 'application/json', 'Content-Length': Buffer.byteLength(payload) }),
        },
        timeout: options.timeoutMs ?? 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // Not JSON (e.g. /readyz's text): kept as text.
          }
          resolveResponse({ status: res.statusCode ?? 0, body: parsed, warnings: parseWarningHeaders(res.headers['warning']) });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within ${options.timeoutMs ?? 30_000} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** The kubectl the tests run: $KUBECTL, else kubectl on PATH. */
export function kubectlProgram(): string {
  return process.env['KUBECTL'] ?? 'kubectl';
}

/** Runs kubectl with a kubeconfig; resolves with its exit code and output (killed after the timeout). */
export function runKubectl(
  args: readonly string[],
  kubeconfig: string,
  options: { input?: string; timeoutMs?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(kubectlProgram(), [...args], {
      env: childEnv({ KUBECONFIG: kubeconfig, HOME: resolve(kubeconfig, '..') }),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${kubectlProgram()} (${error.message}): install kubectl, e.g. Debian's kubernetes-client package (.ci/run does)`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolveRun({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

/** Options of describeApiServers. */
export interface DescribeOptions {
  /** Oldest minor version (of 1.x) the suite applies to; older ones are skipped with the reason. */
  readonly minMinor?: number;
  /** Why older versions are skipped (the skip message), e.g. the API the suite needs and since when. */
  readonly minMinorReason?: string;
  /** Timeout of the whole suite per version (default 10 minutes). */
  readonly timeoutMs?: number;
  readonly envtest?: EnvtestOptions;
}

const skippedSuites: string[] = [];
let skipNoticeArmed = false;

/**
 * Declares `title` once per API server version KUBEBUILDER_ASSETS names: a describe() whose before()
 * waits for its etcd and kube-apiserver (`api()` returns it; all versions start at once when the file
 * is loaded) and whose after() stops them, however the tests end. Without KUBEBUILDER_ASSETS: one skipped test per suite, and a notice on standard error naming
 * the suites and how to run them. With an unusable KUBEBUILDER_ASSETS: one failing test saying why.
 */
export function describeApiServers(title: string, options: DescribeOptions, body: (api: () => Envtest, assets: ApiServerAssets) => void): void {
  const found = processAssets();
  if ('error' in found) {
    test(`${title} (real kube-apiserver)`, () => {
      throw new Error(`${ASSETS_ENV} is set but cannot be used: ${found.error.message}`);
    });
    return;
  }
  if (found.assets.length === 0) {
    const reason = `${ASSETS_ENV} is not set: no real kube-apiserver to test against; run: ${HOW_TO_RUN}`;
    skippedSuites.push(title);
    if (!skipNoticeArmed) {
      skipNoticeArmed = true;
      // One notice per test file, once every suite of it is declared.
      setImmediate(() => {
        process.stderr.write(
          `\n*** SKIPPED real-API-server suites (${ASSETS_ENV} not set): ${skippedSuites.join('; ')}\n*** To run them: ${HOW_TO_RUN}\n\n`,
        );
      });
    }
    test(`${title} (real kube-apiserver)`, { skip: reason }, () => {});
    return;
  }
  for (const assets of found.assets) {
    const name = `${title} [kube-apiserver ${assets.version}]`;
    if (options.minMinor !== undefined && (assets.major < 1 || (assets.major === 1 && assets.minor < options.minMinor))) {
      test(name, { skip: `needs Kubernetes ≥ 1.${options.minMinor}${options.minMinorReason === undefined ? '' : `: ${options.minMinorReason}`}` }, () => {});
      continue;
    }
    // Every version's API server starts as soon as the file is loaded, side by side: the later
    // suites find theirs ready instead of waiting 5–20 s each in turn.
    const starting = startEnvtest(assets, options.envtest);
    // Its failure is reported by before(); this only keeps it from counting as unhandled meanwhile.
    starting.catch(() => {});
    describe(name, { timeout: options.timeoutMs ?? 10 * 60_000 }, () => {
      let envtest: Envtest | undefined;
      before(async () => {
        envtest = await starting;
      }, { timeout: (options.envtest?.readyTimeoutMs ?? 120_000) * 3 + 60_000 });
      after(async () => {
        // Also when before() gave up waiting: the start may still finish, and is then stopped.
        envtest ??= await starting.catch(() => undefined);
        await envtest?.stop();
      }, { timeout: 300_000 });
      body(() => {
        if (envtest === undefined) throw new Error(`kube-apiserver ${assets.version} did not start (see the before hook's error)`);
        return envtest;
      }, assets);
    });
  }
}

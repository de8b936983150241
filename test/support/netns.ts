// Real Linux network namespaces for the traffic-capture tests: a "pod" namespace and a "peer"
// namespace joined by a veth pair, with addresses only inside them, small TCP servers standing in
// for Envoy, the app and a remote server, and clients that connect as a chosen UID/GID.
//
// Needs root (it creates namespaces and runs iptables). Not root: every test using it FAILS with
// a message saying so, unless NETNS_TESTS=skip asks to skip them, which node:test
// then reports as skipped with the reason. Root without iptables, ip, python3 or setpriv: FAIL.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import type { TestContext } from 'node:test';

const execFileAsync = promisify(execFile);

/** Repository root: init-iptables runs from here so `--import tsx` resolves. */
export const REPO = new URL('../../', import.meta.url).pathname;
const MAIN = new URL('../../src/main.ts', import.meta.url).pathname;

/** Set to `skip` to skip (loudly) the tests that need root when not running as root. */
export const SKIP_ENV = 'NETNS_TESTS';

/** Programs the tests run; `.ci/run` installs them on a fresh Debian machine. */
const REQUIRED_PROGRAMS = [
  'ip',
  'iptables-nft-restore',
  'iptables-legacy-restore',
  'ip6tables-nft-restore',
  'ip6tables-legacy-restore',
  'iptables-nft-save',
  'iptables-legacy-save',
  'python3',
  'setpriv',
];

function hasProgram(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Absolute path of a program on the test's PATH (so a test may give init-iptables another PATH). */
export function programPath(name: string): string {
  return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
}

let python: string | undefined;
/** The real python3 executable (resolved once, so version-manager shims are not run per client). */
function pythonExecutable(): string {
  python ??= execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();
  return python;
}

/**
 * Checks that this process may run the namespace tests: returns false (after skipping `t` loudly)
 * only when not root and skipping was asked for; throws a clear error in every other bad case.
 */
export function requireRootAndTools(t: TestContext): boolean {
  const root = process.platform === 'linux' && process.getuid?.() === 0;
  if (!root) {
    const why =
      'this test needs root on Linux: it creates network namespaces and runs the real iptables ' +
      '(CI runs it as root through .ci/run)';
    if (process.env[SKIP_ENV] === 'skip') {
      process.stderr.write(`SKIPPED (${SKIP_ENV}=skip): ${why}\n`);
      t.skip(`${SKIP_ENV}=skip: ${why}`);
      return false;
    }
    throw new Error(`${why}; run it as root, or set ${SKIP_ENV}=skip to skip it explicitly`);
  }
  const missing = REQUIRED_PROGRAMS.filter((name) => !hasProgram(name));
  if (missing.length > 0) {
    throw new Error(
      `running as root but ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} missing: ` +
        'install iptables, iproute2, python3 and util-linux (.ci/run does)',
    );
  }
  return true;
}

/** Runs a command and returns its standard output; throws with its standard error on failure. */
export async function sh(program: string, args: readonly string[], input?: string): Promise<string> {
  if (input === undefined) {
    const { stdout } = await execFileAsync(program, [...args], { encoding: 'utf8', timeout: 30_000 });
    return stdout;
  }
  return new Promise((resolve, reject) => {
    const child = spawn(program, [...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`${program} ${args.join(' ')}: ${stderr}`))));
    child.stdin.end(input);
  });
}

/** Result of a run of `envoy-injector init-iptables`. */
export interface InitRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the real `envoy-injector init-iptables` (src/main.ts through tsx) with a PATH and identity. */
export async function runInitIptables(
  ns: string | undefined,
  args: readonly string[],
  options: { path?: string; uid?: number; noCapabilities?: boolean; env?: Readonly<Record<string, string>>; unset?: readonly string[] } = {},
): Promise<InitRun> {
  const node = [process.execPath, '--import', 'tsx', MAIN, 'init-iptables', ...args];
  const asUser =
    options.uid === undefined ? [] : [programPath('setpriv'), `--reuid=${options.uid}`, `--regid=${options.uid}`, '--clear-groups'];
  // Still root (so it can read a checkout only root may enter), but with every capability dropped,
  // as in a pod whose envoy-init was not granted NET_ADMIN.
  if (options.noCapabilities === true) asUser.push(programPath('setpriv'), '--inh-caps=-all', '--ambient-caps=-all', '--bounding-set=-all');
  const argv = [...(ns === undefined ? [] : [programPath('ip'), 'netns', 'exec', ns]), ...asUser, ...node];
  const env: Record<string, string | undefined> = { ...process.env, ...options.env, ...(options.path === undefined ? {} : { PATH: options.path }) };
  for (const name of options.unset ?? []) delete env[name];
  return new Promise((resolve, reject) => {
    // ip and setpriv are given by absolute path: options.path is the PATH init-iptables sees.
    const child = spawn(argv[0] as string, argv.slice(1), { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

// A server standing in for Envoy's capture listeners, the app and a remote server. Every reply is
// text that says which hops a connection took, so a test reads the path from the response:
//   echo       "<name>:<port> from <client address>"
//   capture    "<name>(<original destination>)>" then, like Envoy's TCP passthrough, the reply of
//              the original destination; the inbound side connects from 127.0.0.6 / ::6 (IPv6 with
//              IPV6_FREEBIND, as the bootstrap does). A connection arriving at the inbound side
//              from 127.0.0.6 / ::6 is the passthrough captured again: it answers LOOP.
const SERVER = String.raw`
import json, os, socket, struct, sys, threading
cfg = json.loads(sys.argv[1])
listeners = []
for l in cfg["listeners"]:
    fam = socket.AF_INET if l["family"] == 4 else socket.AF_INET6
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((l.get("address", "0.0.0.0" if fam == socket.AF_INET else "::"), l["port"]))
    s.listen(64)
    listeners.append((s, l))
if "uid" in cfg:
    os.setgroups([]); os.setgid(cfg["gid"]); os.setuid(cfg["uid"])

def fmt(fam, host, port):
    return ("[%s]:%d" if fam == socket.AF_INET6 else "%s:%d") % (host, port)

def original_dst(c, fam):
    if fam == socket.AF_INET:
        raw = c.getsockopt(socket.SOL_IP, 80, 16)  # SO_ORIGINAL_DST
        port = struct.unpack("!H", raw[2:4])[0]
        return socket.AF_INET, socket.inet_ntop(socket.AF_INET, raw[4:8]), port
    raw = c.getsockopt(socket.IPPROTO_IPV6, 80, 28)  # IP6T_SO_ORIGINAL_DST
    port = struct.unpack("!H", raw[2:4])[0]
    return socket.AF_INET6, socket.inet_ntop(socket.AF_INET6, raw[8:24]), port

def read_all(s):
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            return data
        data += chunk

def handle(c, peer, l, fam):
    try:
        if l["role"] == "echo":
            c.sendall(("%s:%d from %s" % (l["name"], l["port"], peer[0])).encode())
            return
        ofam, host, port = original_dst(c, fam)
        if l["role"] == "inbound" and peer[0] in ("127.0.0.6", "::6"):
            c.sendall(b"LOOP")
            return
        c.sendall(("%s(%s)>" % (l["name"], fmt(ofam, host, port))).encode())
        if port == l["port"]:
            c.sendall(b"BLACKHOLE")
            return
        u = socket.socket(ofam, socket.SOCK_STREAM)
        u.settimeout(5)
        if l["role"] == "inbound":
            if ofam == socket.AF_INET6:
                u.setsockopt(socket.IPPROTO_IPV6, 78, 1)  # IPV6_FREEBIND
                u.bind(("::6", 0))
            else:
                u.bind(("127.0.0.6", 0))
        try:
            u.connect((host, port))
            c.sendall(read_all(u))
        except OSError as e:
            c.sendall(("UPSTREAM-ERROR %s" % e).encode())
        finally:
            u.close()
    finally:
        c.close()

def serve(s, l):
    while True:
        c, peer = s.accept()
        threading.Thread(target=handle, args=(c, peer, l, s.family), daemon=True).start()

for s, l in listeners:
    threading.Thread(target=serve, args=(s, l), daemon=True).start()
print("READY", flush=True)
sys.stdin.read()
`;

// A client: connects (as the given UID/GID, from the given source) and prints what it got back.
const CLIENT = String.raw`
import json, os, socket, sys
cfg = json.loads(sys.argv[1])
if "gid" in cfg:
    os.setgroups([]); os.setgid(cfg["gid"])
if "uid" in cfg:
    os.setuid(cfg["uid"])
fam = socket.AF_INET6 if ":" in cfg["host"] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.settimeout(cfg.get("timeout", 5))
try:
    if "bind" in cfg:
        s.bind((cfg["bind"], 0))
    s.connect((cfg["host"], cfg["port"]))
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    print(data.decode(), end="")
except OSError as e:
    print("ERROR %s" % type(e).__name__, end="")
`;

/** How long a helper process may take to say READY (a loaded 2-core machine starts python slowly). */
const READY_LIMIT_MS = 60_000;

/**
 * Resolves once `child` prints READY on its stdout; rejects, with what it wrote to stderr, when it
 * exits first or says nothing within READY_LIMIT_MS (the caller stops it). `what` names it in errors.
 */
export function waitForReady(child: ChildProcess, what: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let out = '';
    let err = '';
    const settle = (error?: Error) => {
      clearTimeout(timer);
      child.off('exit', onExit);
      if (error === undefined) resolve();
      else reject(error);
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => settle(new Error(`${what} exited (${code ?? signal}) before it was ready: ${err}`));
    const timer = setTimeout(() => settle(new Error(`${what} was not ready within ${READY_LIMIT_MS} ms: ${err}`)), READY_LIMIT_MS);
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      if (out.includes('READY')) settle();
    });
    child.on('exit', onExit);
  });
}

/** Starts a stand-in server (see SERVER) in namespace `ns`; resolves once it listens. */
export async function startStandIn(ns: string, listeners: readonly Listener[], identity?: { uid: number; gid: number }): Promise<ChildProcess> {
  const config = JSON.stringify({ listeners, ...(identity ?? {}) });
  const child = spawn('ip', ['netns', 'exec', ns, pythonExecutable(), '-c', SERVER, config], { stdio: ['pipe', 'pipe', 'pipe'] });
  try {
    await waitForReady(child, `stand-in server in ${ns}`);
  } catch (error) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    throw error;
  }
  return child;
}

/** Connects from namespace `ns` (see CLIENT) and returns the reply, or `ERROR <kind>`. */
export function connectIn(
  ns: string,
  target: { host: string; port: number; uid?: number; gid?: number; bind?: string; timeout?: number },
): Promise<string> {
  return sh('ip', ['netns', 'exec', ns, pythonExecutable(), '-c', CLIENT, JSON.stringify(target)]);
}

/** A listener of a stand-in server. */
export interface Listener {
  readonly port: number;
  readonly family: 4 | 6;
  readonly role: 'echo' | 'outbound' | 'inbound';
  readonly name: string;
  readonly address?: string;
}

/** Two namespaces joined by a veth pair: the pod and a peer (a remote host, or the node). */
export interface Topology {
  readonly pod: string;
  readonly peer: string;
  readonly podIp: string;
  readonly peerIp: string;
  /** A second address of the peer (for CIDR exclusions). */
  readonly peerIp2: string;
  readonly podIp6: string;
  readonly peerIp6: string;
  readonly peerIp6b: string;
  /** Starts a stand-in server in a namespace; it is stopped when the topology is removed. */
  serve(ns: string, listeners: readonly Listener[], identity?: { uid: number; gid: number }): Promise<void>;
  /** Connects from a namespace and returns the reply, or `ERROR <kind>`. */
  connect(
    ns: string,
    target: { host: string; port: number; uid?: number; gid?: number; bind?: string; timeout?: number },
  ): Promise<string>;
  /** Runs a command inside a namespace and returns its output. */
  exec(ns: string, program: string, args: readonly string[], input?: string): Promise<string>;
  remove(): Promise<void>;
}

/** Every namespace this process created and has not removed yet. */
const live = new Set<string>();

/** Returns the namespaces created by this process that still exist (should be none after a test). */
export async function leftoverNamespaces(): Promise<string[]> {
  const names = (await sh('ip', ['netns', 'list'])).split('\n').map((l) => l.split(' ')[0] ?? '');
  return names.filter((n) => [...live].includes(n));
}

/** Names namespaces `ei-ipt-<random>-pod/-peer` so parallel runs never clash. */
export async function createTopology(options: { ipv6?: boolean } = {}): Promise<Topology> {
  const id = randomBytes(3).toString('hex');
  const pod = `ei-ipt-${id}-pod`;
  const peer = `ei-ipt-${id}-peer`;
  const vethPod = `ei${id}p`;
  const vethPeer = `ei${id}r`;
  const servers: ChildProcess[] = [];
  const t: Topology = {
    pod,
    peer,
    podIp: '10.77.0.1',
    peerIp: '10.77.0.2',
    peerIp2: '10.77.0.3',
    podIp6: 'fd77::1',
    peerIp6: 'fd77::2',
    peerIp6b: 'fd77::3',
    async serve(ns, listeners, identity) {
      const config = JSON.stringify({ listeners, ...(identity ?? {}) });
      const child = spawn('ip', ['netns', 'exec', ns, pythonExecutable(), '-c', SERVER, config], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      // Stopped by remove() whatever happens here.
      servers.push(child);
      await waitForReady(child, `stand-in server in ${ns}`);
    },
    async connect(ns, target) {
      return sh('ip', ['netns', 'exec', ns, pythonExecutable(), '-c', CLIENT, JSON.stringify(target)]);
    },
    exec: (ns, program, args, input) => sh('ip', ['netns', 'exec', ns, program, ...args], input),
    async remove() {
      for (const child of servers) {
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      await Promise.all(servers.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : null)));
      for (const ns of [pod, peer]) {
        // Deleting a namespace also deletes the veth end inside it (and so the pair).
        await sh('ip', ['netns', 'del', ns]).catch(() => undefined);
        live.delete(ns);
      }
    },
  };
  try {
    for (const ns of [pod, peer]) {
      await sh('ip', ['netns', 'add', ns]);
      live.add(ns);
    }
    // Created inside the pod namespace with its peer end moved straight into the peer namespace:
    // nothing of the test ever appears in the host's own network namespace.
    await sh('ip', ['-n', pod, 'link', 'add', vethPod, 'type', 'veth', 'peer', 'name', vethPeer, 'netns', peer]);
    const steps: [string, string[]][] = [
      [pod, ['link', 'set', 'lo', 'up']],
      [peer, ['link', 'set', 'lo', 'up']],
      [pod, ['addr', 'add', `${t.podIp}/24`, 'dev', vethPod]],
      [peer, ['addr', 'add', `${t.peerIp}/24`, 'dev', vethPeer]],
      [peer, ['addr', 'add', `${t.peerIp2}/24`, 'dev', vethPeer]],
      ...(options.ipv6 === true
        ? ([
            // nodad: usable at once instead of after duplicate address detection.
            [pod, ['-6', 'addr', 'add', `${t.podIp6}/64`, 'dev', vethPod, 'nodad']],
            [peer, ['-6', 'addr', 'add', `${t.peerIp6}/64`, 'dev', vethPeer, 'nodad']],
            // preferred_lft 0: a second address that is never picked as a source address.
            [peer, ['-6', 'addr', 'add', `${t.peerIp6b}/64`, 'dev', vethPeer, 'nodad', 'preferred_lft', '0']],
          ] as [string, string[]][])
        : []),
      [pod, ['link', 'set', vethPod, 'up']],
      [peer, ['link', 'set', vethPeer, 'up']],
      // The peer is also the pod's gateway (its "node"), for the Service VIP case.
      [pod, ['route', 'add', 'default', 'via', t.peerIp]],
    ];
    for (const [ns, args] of steps) await sh('ip', ['-n', ns, ...args]);
    if (options.ipv6 === true) await sh('ip', ['-n', pod, '-6', 'route', 'add', 'default', 'via', t.peerIp6]);
  } catch (error) {
    await t.remove();
    throw error;
  }
  return t;
}

/** Creates a topology for the duration of `body` and always removes it, also when `body` fails. */
export async function withTopology<T>(
  t: TestContext,
  options: { ipv6?: boolean },
  body: (topology: Topology) => Promise<T>,
): Promise<T> {
  const topology = await createTopology(options);
  // Belt and braces: the after hook also runs if the test is cancelled (e.g. by its timeout).
  t.after(() => topology.remove());
  try {
    return await body(topology);
  } finally {
    await topology.remove();
  }
}

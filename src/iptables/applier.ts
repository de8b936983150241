// The only part of init-iptables that touches the system: it learns what only the pod knows (its
// IPv6 addresses, which backend its namespace uses, what a previous run left), feeds the rendered
// rules to iptables-restore / ip6tables-restore, and checks the result.
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants as fsConstants, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { INBOUND_PASSTHROUGH_SOURCE_V6 } from '../constants.ts';
import type { Ipv6Mode, TrafficPolicy } from '../core/types.ts';
import { BACKENDS, chooseBackend, type Backend, type BackendProbe } from './backend.ts';
import { classifyToolFailure, InitIptablesError, UNAVAILABLE_KINDS, type ToolResult } from './failures.ts';
import { parseIfInet6, planIpv6, type Ipv6Facts, type Ipv6Plan } from './ipv6.ts';
import type { InitOptions } from './options.ts';
import {
  CHAIN_NAMES,
  JUMPS,
  RESTORE_ARGS,
  countRules,
  renderIptablesRules,
  renderRemoval,
  type IpFamily,
} from './rules.ts';
import { countSavedRules, findExistingCapture, holdsCapture, parseIptablesSave, summarizeCapture } from './save.ts';

/** Longest any one program may run; the xtables lock wait (30 s) fits well inside. */
const TOOL_TIMEOUT_MS = 60_000;
/** Bit of CAP_NET_ADMIN in the capability masks of /proc/self/status. */
const CAP_NET_ADMIN = 12n;

interface RunResult extends ToolResult {
  readonly stdout: string;
}

/** Runs a program with optional standard input; never throws (a failure to start is in the result). */
function runTool(program: string, args: readonly string[], input?: string): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(program, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: TOOL_TIMEOUT_MS });
    let stdout = '';
    let stderr = '';
    let settled = false;
    const finish = (result: RunResult): void => {
      if (!settled) resolve(result);
      settled = true;
    };
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', (error: NodeJS.ErrnoException) => finish({ code: null, stdout, stderr, spawnError: error.code ?? error.message }));
    child.on('close', (code, signal) =>
      finish({ code, stdout, stderr: signal === null ? stderr : `${stderr}\nkilled by ${signal} (timed out?)` }),
    );
    // A program that exits before reading its input closes the pipe; that is reported by its exit.
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
  });
}

function onPath(name: string): boolean {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, name), fsConstants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

/**
 * Returns the program for one family, backend and action: `iptables-nft-restore` and friends, or
 * the unsuffixed `iptables-restore` when only that is installed and `--version` says it is that
 * backend (older distributions). When none is installed, the suffixed name, so the error names it.
 */
function resolveProgram(family: IpFamily, backend: Backend, action: 'save' | 'restore'): string {
  const base = family === 4 ? 'iptables' : 'ip6tables';
  const suffixed = `${base}-${backend}-${action}`;
  if (onPath(suffixed)) return suffixed;
  const plain = `${base}-${action}`;
  if (onPath(plain)) {
    const version = spawnSync(plain, ['--version'], { encoding: 'utf8', timeout: TOOL_TIMEOUT_MS });
    const text = `${version.stdout ?? ''}${version.stderr ?? ''}`;
    // iptables before 1.8 has no nft backend and prints no mode.
    const mode = /\(nf_tables\)/.test(text) ? 'nft' : 'legacy';
    if (version.status === 0 && mode === backend) return plain;
  }
  return suffixed;
}

/** Throws when the process certainly lacks CAP_NET_ADMIN (the kernel would refuse every change). */
function checkPrivileges(): void {
  let status: string;
  try {
    status = readFileSync('/proc/self/status', 'utf8');
  } catch {
    return; // no procfs: let the tools say what is wrong
  }
  const match = /^CapEff:\s*([0-9a-f]+)$/im.exec(status);
  if (match === null) return;
  if ((BigInt(`0x${match[1]}`) >> CAP_NET_ADMIN) & 1n) return;
  throw new InitIptablesError({
    kind: 'no-permission',
    message: `no permission: this process (uid ${process.getuid?.() ?? '?'}) lacks CAP_NET_ADMIN; run it as root with NET_ADMIN and NET_RAW in the pod network namespace`,
  });
}

/** Reads the namespace's IPv6 addresses; no /proc/net/if_inet6 means the kernel has no IPv6 here. */
export function readIpv6Facts(): Ipv6Facts {
  try {
    return { stack: true, addresses: parseIfInet6(readFileSync('/proc/net/if_inet6', 'utf8')) };
  } catch {
    return { stack: false, addresses: [] };
  }
}

/** Looks at one backend: can it be used here, and do its tables already hold rules? */
async function probeBackend(backend: Backend, families: readonly IpFamily[]): Promise<BackendProbe> {
  let ruleCount = 0;
  let capture = false;
  for (const family of families) {
    const program = resolveProgram(family, backend, 'save');
    // Without -t, save lists only the tables that exist: looking does not create legacy tables.
    const result = await runTool(program, []);
    if (result.code !== 0) {
      // IPv4 decides whether the backend is usable; IPv6 problems are handled when applying IPv6.
      if (family === 4) return { backend, usable: false, problem: classifyToolFailure(program, result) };
      continue;
    }
    const tables = parseIptablesSave(result.stdout);
    ruleCount += countSavedRules(tables);
    capture ||= holdsCapture(tables);
  }
  return { backend, usable: true, ruleCount, holdsCapture: capture };
}

async function saveNat(family: IpFamily, backend: Backend) {
  const program = resolveProgram(family, backend, 'save');
  const result = await runTool(program, ['-t', 'nat']);
  if (result.code !== 0) throw new InitIptablesError(classifyToolFailure(program, result));
  return parseIptablesSave(result.stdout);
}

/** Checks that the nat table now holds exactly the rendered capture: one of each jump, every rule once. */
function verify(family: IpFamily, policy: TrafficPolicy, tables: ReturnType<typeof parseIptablesSave>): void {
  const { jumps, rulesPerChain } = summarizeCapture(tables);
  const expected = countRules(policy, family);
  const problems: string[] = [];
  for (const { from, to } of JUMPS) {
    const key = `${from} -> ${to}`;
    if (jumps[key] !== 1) problems.push(`${key} present ${jumps[key] ?? 0} times`);
  }
  for (const key of Object.keys(jumps)) {
    if (!JUMPS.some(({ from, to }) => key === `${from} -> ${to}`)) problems.push(`unexpected jump ${key}`);
  }
  for (const chain of CHAIN_NAMES) {
    const found = rulesPerChain[chain];
    if (found === undefined) problems.push(`${chain} is missing`);
    else if (found !== (expected[chain] ?? 0)) problems.push(`${chain} has ${found} rules, expected ${expected[chain] ?? 0}`);
  }
  for (const chain of Object.keys(rulesPerChain)) {
    if (!CHAIN_NAMES.includes(chain)) problems.push(`stale chain ${chain}`);
  }
  if (problems.length > 0) {
    throw new InitIptablesError({ kind: 'failed', message: `IPv${family} rules are not as applied: ${problems.join('; ')}` });
  }
}

/** Applies the policy for one family in one restore transaction; returns the program line and input. */
async function applyFamily(family: IpFamily, backend: Backend, policy: TrafficPolicy): Promise<string> {
  const existing = findExistingCapture(await saveNat(family, backend));
  const input = renderIptablesRules(policy, family, existing);
  const program = resolveProgram(family, backend, 'restore');
  const result = await runTool(program, RESTORE_ARGS, input);
  if (result.code !== 0) throw new InitIptablesError(classifyToolFailure(program, result));
  verify(family, policy, await saveNat(family, backend));
  return `# IPv${family}: ${program} ${RESTORE_ARGS.join(' ')}\n${input}`;
}

/**
 * Envoy's IPv6 inbound passthrough binds ::6, which is no address of the pod: the app's replies to
 * it would be routed away (measured: the connection never completes). Assigning ::6/128 to lo makes
 * it local, as 127.0.0.6 is by being in 127.0.0.0/8.
 */
async function addPassthroughAddress(): Promise<void> {
  const args = ['-6', 'addr', 'replace', `${INBOUND_PASSTHROUGH_SOURCE_V6}/128`, 'dev', 'lo'];
  const result = await runTool('ip', args);
  if (result.code !== 0) {
    const failure = classifyToolFailure('ip', result);
    throw new InitIptablesError({ kind: failure.kind, message: `cannot add ${INBOUND_PASSTHROUGH_SOURCE_V6}/128 to lo: ${failure.message}` });
  }
}

/** Where the applier reports: one-line messages, and the restore input it applied. */
export interface ApplyOutput {
  info(line: string): void;
  rules(block: string): void;
}

/** What was learnt about IPv6 before applying: the facts and what to do (see ipv6.ts). */
export interface Ipv6Decision {
  readonly facts: Ipv6Facts;
  readonly plan: Exclude<Ipv6Plan, { action: 'fail' }>;
}

/** Reads the pod's IPv6 facts and decides what to do about IPv6 under `mode`; throws InitIptablesError when it must fail. */
export function decideIpv6(mode: Ipv6Mode): Ipv6Decision {
  const facts = readIpv6Facts();
  const plan = planIpv6(mode, facts);
  if (plan.action === 'fail') throw new InitIptablesError(plan.failure);
  return { facts, plan };
}

/**
 * Installs the capture described by `options` in the current network namespace, IPv6 as `decision`
 * says (the same decision the rendered bootstrap follows); throws InitIptablesError.
 */
export async function applyCapture(options: InitOptions, decision: Ipv6Decision, out: ApplyOutput): Promise<void> {
  const print = (line: string): void => out.info(line);
  const { policy } = options;
  const { facts, plan: ipv6 } = decision;
  checkPrivileges();
  const families: IpFamily[] = ipv6.action === 'apply' ? [4, 6] : [4];

  const probes = await Promise.all(BACKENDS.map((backend) => probeBackend(backend, families)));
  const choice = chooseBackend(probes, options.backend);
  if (!choice.ok) throw new InitIptablesError(choice.failure);
  const { backend } = choice;
  print(`backend ${backend}: ${choice.reason}`);
  if (choice.warning !== undefined) print(`warning: ${choice.warning}`);

  const applied: string[] = [await applyFamily(4, backend, policy)];
  print(ipv6.note);
  if (ipv6.action === 'apply') {
    try {
      applied.push(await applyFamily(6, backend, policy));
    } catch (error) {
      // Without a global address nothing can leave over IPv6 yet: a backend that cannot do IPv6
      // NAT here is worth a note, not a pod that never starts.
      if (ipv6.required || !(error instanceof InitIptablesError) || !UNAVAILABLE_KINDS.includes(error.kind)) throw error;
      print(`note: IPv6 rules not installed: ${error.message}`);
    }
    if (applied.length === 2) {
      try {
        if (!facts.addresses.some((a) => a.interface === 'lo')) {
          // No ::1: IPv6 is disabled on lo, and the kernel refuses any address there.
          throw new InitIptablesError({
            kind: 'failed',
            message: `IPv6 is disabled on lo, so ${INBOUND_PASSTHROUGH_SOURCE_V6}/128 (the proxy's IPv6 inbound passthrough source) cannot be added`,
          });
        }
        await addPassthroughAddress();
        print(`added ${INBOUND_PASSTHROUGH_SOURCE_V6}/128 to lo (source of the proxy's IPv6 inbound passthrough)`);
      } catch (error) {
        // Without a global address no IPv6 connection can arrive to pass through yet.
        if (ipv6.required || !(error instanceof InitIptablesError)) throw error;
        print(`note: ${error.message}`);
      }
    }
  }
  for (const block of applied) out.rules(block);
  print(`traffic capture installed with ${backend} (${applied.length === 2 ? 'IPv4 and IPv6' : 'IPv4'})`);
}

/**
 * Removes every capture chain and jump from both backends and families (CNI DEL), and the ::6
 * passthrough address; touches nothing else. A backend or family that cannot be used here has
 * nothing of ours to remove. Returns one line per family and backend it changed.
 */
export async function removeCapture(): Promise<string[]> {
  checkPrivileges();
  const removed: string[] = [];
  for (const backend of BACKENDS) {
    for (const family of [4, 6] as const) {
      const program = resolveProgram(family, backend, 'save');
      // Without -t: listing the tables that exist never creates a legacy nat table.
      const saved = await runTool(program, []);
      if (saved.code !== 0) continue;
      const input = renderRemoval(findExistingCapture(parseIptablesSave(saved.stdout)));
      if (input === null) continue;
      const restore = resolveProgram(family, backend, 'restore');
      const result = await runTool(restore, RESTORE_ARGS, input);
      if (result.code !== 0) throw new InitIptablesError(classifyToolFailure(restore, result));
      removed.push(`removed the IPv${family} capture (${backend})`);
    }
  }
  const facts = readIpv6Facts();
  if (facts.addresses.some((a) => a.interface === 'lo' && a.address === INBOUND_PASSTHROUGH_SOURCE_V6)) {
    const result = await runTool('ip', ['-6', 'addr', 'del', `${INBOUND_PASSTHROUGH_SOURCE_V6}/128`, 'dev', 'lo']);
    if (result.code === 0) removed.push(`removed ${INBOUND_PASSTHROUGH_SOURCE_V6}/128 from lo`);
  }
  return removed;
}

/**
 * Checks that this namespace holds exactly the capture of `policy` (CNI CHECK): in the backend
 * holding it, IPv4, and IPv6 where ip6tables holds any of it. Throws InitIptablesError when not.
 */
export async function checkInstalledCapture(policy: TrafficPolicy): Promise<string> {
  checkPrivileges();
  const probes = await Promise.all(BACKENDS.map((backend) => probeBackend(backend, [4, 6])));
  const holder = probes.find((p) => p.usable && p.holdsCapture);
  if (holder === undefined) throw new InitIptablesError({ kind: 'failed', message: 'no capture is installed in this network namespace' });
  verify(4, policy, await saveNat(4, holder.backend));
  let families = 'IPv4';
  const v6 = await runTool(resolveProgram(6, holder.backend, 'save'), ['-t', 'nat']);
  if (v6.code === 0 && holdsCapture(parseIptablesSave(v6.stdout))) {
    verify(6, policy, parseIptablesSave(v6.stdout));
    families = 'IPv4 and IPv6';
  }
  return `the capture is installed as the policy says (${holder.backend}, ${families})`;
}

// `envoy-injector init-iptables` as the real binary (src/main.ts through tsx), for what needs no
// network namespace: --help, usage errors, and --dry-run printing exactly the generator's goldens,
// without privileges.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

const MAIN = new URL('../src/main.ts', import.meta.url).pathname;
const REPO = new URL('../', import.meta.url).pathname;
const GOLDENS = new URL('./testdata/iptables/', import.meta.url).pathname;

/**
 * Runs init-iptables; without any capability when the tests run as root (still uid 0, so it can read
 * a checkout that only root may enter, as CI's may be).
 */
function initIptables(args: string[], options: { unprivileged?: boolean } = {}) {
  const dropCapabilities = options.unprivileged === true && process.getuid?.() === 0;
  const argv = [process.execPath, '--import', 'tsx', MAIN, 'init-iptables', ...args];
  const [program, ...rest] = dropCapabilities
    ? ['setpriv', '--inh-caps=-all', '--ambient-caps=-all', '--bounding-set=-all', ...argv]
    : argv;
  const result = spawnSync(program as string, rest, { cwd: REPO, encoding: 'utf8' });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

test('--help prints the flags and exits 0', () => {
  const run = initIptables(['--help']);
  assert.equal(run.code, 0, run.stderr);
  for (const flag of ['--exclude-inbound-ports', '--include-outbound-ip-ranges', '--ipv6', '--backend=auto|nft|legacy', '--dry-run']) {
    assert.ok(run.stdout.includes(flag), flag);
  }
});

test('a bad flag is one line on standard error and exit 2, before anything is touched', () => {
  const cases: [string[], string][] = [
    [['--exclude-inbound-ports=http'], 'envoy-injector init-iptables: --exclude-inbound-ports="http": expected a comma-separated list of at most 256 ports from 1 to 65535 (e.g. "8080,9090"), or empty for none; see envoy-injector init-iptables --help\n'],
    [['--backend=xtables'], 'envoy-injector init-iptables: --backend="xtables": expected one of auto, nft, legacy; see envoy-injector init-iptables --help\n'],
    [['--config=/etc/x.yaml'], 'envoy-injector init-iptables: init-iptables reads no config file (-c/--config): its flags carry the whole policy; see envoy-injector init-iptables --help\n'],
    [['--exclude-inbound-port=1'], "envoy-injector init-iptables: Unknown option '--exclude-inbound-port'; see envoy-injector init-iptables --help\n"],
  ];
  for (const [args, stderr] of cases) {
    const run = initIptables(args);
    assert.equal(run.code, 2, args.join(' '));
    assert.equal(run.stderr, stderr);
    assert.equal(run.stdout, '');
  }
});

// Three goldens are enough here: the generator tests check every golden in-process.
for (const name of ['defaults', 'exclusions', 'multiport-split']) {
  test(`--dry-run prints exactly the golden restore input (${name}), without privileges`, () => {
    const text = readFileSync(`${GOLDENS}${name}.rules`, 'utf8');
    const [command = '', ...output] = text.split('\n');
    const args = command.replace(/^# envoy-injector init-iptables /, '').split(' ');
    assert.equal(args[0], '--dry-run');
    const run = initIptables(args, { unprivileged: true });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, output.join('\n'));
    assert.equal(run.stderr, '');
  });
}

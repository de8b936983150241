// `envoy-injector init-iptables`: what the envoy-init container runs (SPEC.md §4). Parses the flags,
// then either prints the rules (--dry-run) or decides IPv6 from what the pod has, renders the pod's
// bootstrap when asked (--bootstrap-dir) and installs the rules, both following that one decision;
// in CNI mode (--capture-mode=cni) it checks the capture the node's CNI plugin installed instead;
// every failure is one line on standard error and an exit code naming its cause (see failures.ts).
import { VERSION } from '../version.ts';
import { applyCapture, checkInstalledCapture, decideIpv6, removeCapture } from './applier.ts';
import { writeBootstrap } from './bootstrap-writer.ts';
import { checkCapture } from './capture-check.ts';
import { FAILURE_KINDS, InitIptablesError } from './failures.ts';
import { proxyListensOnIpv6 } from './ipv6.ts';
import { initIptablesUsage, parseInitArgs } from './options.ts';
import { renderDryRun } from './rules.ts';

const PREFIX = 'envoy-injector init-iptables';

/** Runs init-iptables with its arguments (after the command name); resolves to the exit code. */
export async function run(args: string[]): Promise<number> {
  const parsed = parseInitArgs(args);
  if (!parsed.ok) {
    process.stderr.write(`${PREFIX}: ${parsed.error}; see envoy-injector init-iptables --help\n`);
    return FAILURE_KINDS.usage;
  }
  if (parsed.help) {
    process.stdout.write(initIptablesUsage());
    return 0;
  }
  const { options } = parsed;
  if (options.dryRun) {
    process.stdout.write(renderDryRun(options.policy));
    return 0;
  }
  const info = (line: string) => process.stdout.write(`${PREFIX}: ${line}\n`);
  try {
    if (options.remove) {
      const removed = await removeCapture();
      info(removed.length === 0 ? 'no capture to remove' : removed.join('; '));
      return 0;
    }
    if (options.check) {
      info(await checkInstalledCapture(options.policy));
      return 0;
    }
    const ipv6 = decideIpv6(options.policy.ipv6);
    const { bootstrap } = options.inputs;
    // Rendered first: a missing volume or pod fact fails before anything in the namespace changes.
    if (bootstrap !== null) {
      const listensOnIpv6 = proxyListensOnIpv6(ipv6.plan);
      const written = writeBootstrap({ ...options.inputs, bootstrap }, listensOnIpv6, VERSION);
      info(`bootstrap written to ${written.dir} (${written.files.join(', ')}): listeners on ${listensOnIpv6 ? 'IPv4 and IPv6' : 'IPv4 only'}`);
    }
    if (options.inputs.proxy.captureMode === 'cni') {
      // The node's CNI plugin installed the capture before this container started: check it.
      const check = await checkCapture(options.policy, { nodeName: process.env['NODE_NAME'] ?? '' });
      info(
        check.checked
          ? `traffic capture in place (installed by the node's CNI plugin): a connection to ${check.address}:${check.port} was redirected to ${options.policy.outboundCapturePort}`
          : `traffic capture not checked: ${check.reason}, and inbound capture cannot be seen from inside the pod`,
      );
      return 0;
    }
    await applyCapture(options, ipv6, { info, rules: (block) => process.stdout.write(block) });
    return 0;
  } catch (error) {
    if (error instanceof InitIptablesError) {
      process.stderr.write(`${PREFIX}: ${error.message}\n`);
      return error.exitCode;
    }
    process.stderr.write(`${PREFIX}: unexpected error: ${(error as Error)?.message ?? String(error)}\n`);
    return FAILURE_KINDS.failed;
  }
}

// `envoy-injector init-iptables`: what the envoy-init container runs (SPEC.md §4). Parses the flags,
// then either prints the rules (--dry-run) or installs them; every failure is one line on standard
// error and an exit code naming its cause (see failures.ts).
import { applyCapture } from './applier.ts';
import { FAILURE_KINDS, InitIptablesError } from './failures.ts';
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
  try {
    await applyCapture(options, {
      info: (line) => process.stdout.write(`${PREFIX}: ${line}\n`),
      rules: (block) => process.stdout.write(block),
    });
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

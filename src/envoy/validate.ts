// A bootstrap checked the way Envoy checks it: strictly against the v3 protos (envoy/protos.ts), then
// the rules protos cannot express (envoy/rules.ts). The one entry point of the CLI, `check` and the
// config check; the tests use it too (test/support/envoy-proto-check.ts).
import { validateEnvoyMessage, type MessageNode, type Violation } from './protos.ts';
import { bootstrapRuleViolations } from './rules.ts';

export const BOOTSTRAP_TYPE = 'envoy.config.bootstrap.v3.Bootstrap';

/** Returns every violation of a bootstrap (the protos first: the rules only run on one that parses), and its messages. */
export function validateBootstrap(bootstrap: unknown): { readonly violations: readonly Violation[]; readonly messages: readonly MessageNode[] } {
  const result = validateEnvoyMessage(BOOTSTRAP_TYPE, bootstrap);
  if (result.violations.length > 0) return result;
  return { violations: bootstrapRuleViolations(result.messages), messages: result.messages };
}

// The strict v3 validator (src/envoy/protos.ts) as the tests use it: its entry points, and an assertion.
import assert from 'node:assert/strict';
import { formatViolations, validateEnvoyMessage, type ProtoValidation } from '../../src/envoy/protos.ts';

export * from '../../src/envoy/protos.ts';

/** Asserts `json` is a valid `typeName`, failing with every violation and its path. */
export function assertValidEnvoyMessage(typeName: string, json: unknown): ProtoValidation {
  const result = validateEnvoyMessage(typeName, json);
  assert.equal(result.violations.length, 0, `invalid ${typeName}:\n${formatViolations(result.violations)}`);
  return result;
}

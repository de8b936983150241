// injectPod: the one entry point the webhook, the CLI and the tests share. Pure: no I/O, no clock.
import type { Operation } from 'fast-json-patch';
import { decide, type Decision } from './decide.ts';
import { applyPlan, createPatch, type InjectionPlan } from './patch.ts';
import type { Warning } from './reasons.ts';
import { SETTINGS, type SettingsTable } from './settings.ts';
import type { InjectionStatus } from './status.ts';
import type { AdmissionContext, InjectorConfig, InjectorRuntime, JsonObject } from './types.ts';

/** The outcome of one injection: the decision and, when injected, the pod, its patch and what was added. */
export interface InjectionResult {
  readonly decision: Decision;
  readonly warnings: readonly Warning[];
  /** JSON Patch for the request object; empty unless the pod is injected (or its order restored). */
  readonly patch: readonly Operation[];
  /** The injected pod (only when injected, or reordered). */
  readonly pod?: JsonObject;
  /** What the injection added (only when injected). */
  readonly plan?: InjectionPlan;
  readonly status?: InjectionStatus;
}

/** Decides about `object` and, when it is to be injected, returns the injected pod and its patch. */
export function injectPod(
  object: unknown,
  ctx: AdmissionContext,
  config: InjectorConfig,
  runtime: InjectorRuntime,
  settings: SettingsTable = SETTINGS,
): InjectionResult {
  const { decision, warnings, pod, injection, reordering } = decide(object, ctx, config, runtime, settings);
  if (decision.action === 'reorder' && reordering !== undefined) return { decision, warnings, patch: reordering.patch, pod: reordering.pod };
  if (decision.action !== 'inject' || pod === undefined || injection === undefined) return { decision, warnings, patch: [] };
  const { plan, status } = injection;
  return { decision, warnings, patch: createPatch(pod, plan), pod: applyPlan(pod, plan), plan, status };
}

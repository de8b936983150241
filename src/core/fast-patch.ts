// The webhook's fast path for an injected pod's answer. The reference path (decide → plan →
// createPatch → JSON.stringify → base64) builds the same containers, hashes the same config and
// stringifies the same JSON for every replica of a workload; here the patch is rendered once per
// template key — the effective proxy config (as the settings' annotation texts that make it), the
// pod's patch shape and its plan facts — with the two per-pod strings (the workload name and the
// first container's name) left as slots, and its base64 is precomputed around them. The decision
// itself (facts, skips, denials, warnings) is still made by `evaluate`, the same code as the
// reference's; only what follows an `inject` decision comes from the template.
//
// Pure and deterministic: the cache is a memo of a pure function, and a template is only ever kept
// after it reproduced the reference's patch byte for byte for the pod that made it.
import { Buffer } from 'node:buffer';
import { evaluate, type Decision } from './decide.ts';
import { escapeEnvReferences } from './env-expansion.ts';
import { injectPod } from './inject.ts';
import { createPatch, type PatchShape } from './patch.ts';
import { planFacts, planFromFacts, type PlanFacts } from './plan.ts';
import type { ResolvedSetting } from './overrides.ts';
import type { PodView } from './pod.ts';
import type { Warning } from './reasons.ts';
import { SETTINGS, type SettingsTable } from './settings.ts';
import type { AdmissionContext, InjectorConfig, InjectorRuntime } from './types.ts';

/**
 * Templates kept (least recently used dropped first). A template is one rendered patch, a few KB:
 * 256 of them hold every combination of override annotations a cluster of many teams uses, in
 * about a megabyte.
 */
export const FAST_PATCH_CACHE_SIZE = 256;

/**
 * Longest template key kept, in characters. The key holds the settings' annotation texts; a pod
 * with a huge override value (up to 256 KiB) is answered by the reference path instead of
 * pinning that text in the cache.
 */
export const FAST_PATCH_MAX_KEY_LENGTH = 2_048;

/**
 * Longest per-pod string (workload name, first container name) the fast path writes into a
 * template, in characters: 253, a DNS subdomain, the longest either can be once the API server
 * has validated the pod. A longer one (the API server validates names only after mutating
 * admission) is answered by the reference path, so that checks on the size of what is injected
 * always see the real string.
 */
export const FAST_PATCH_MAX_SLOT_LENGTH = 253;

/** Whether an answer came from a cached template (`hit`) or a template rendered for it (`miss`). */
export type FastPatchCache = 'hit' | 'miss';

/** An injected pod's answer from the fast path: the decision as `evaluate` made it and the encoded patch. */
export interface FastInjection {
  readonly decision: Extract<Decision, { action: 'inject' }>;
  readonly warnings: readonly Warning[];
  /** The JSON Patch, base64 of its UTF-8 JSON, exactly as the reference path encodes it. */
  readonly patchBase64: string;
  readonly patchOperations: number;
  /** Bytes of the patch's JSON (before base64). */
  readonly patchBytes: number;
  readonly cache: FastPatchCache;
}

/** Why the fast path did not answer: the reference path answers these. */
export type FastPatchDecline = 'not-injected' | 'uncacheable';

export type FastPatchResult = { readonly handled: true; readonly injection: FastInjection } | { readonly handled: false; readonly why: FastPatchDecline };

/** The fast path of one (config, runtime, settings table): its template cache and the entry point. */
export interface FastPatcher {
  /** Answers an injected pod from a template, or declines (skips, denials, uncacheable keys). */
  inject(object: unknown, ctx: AdmissionContext): FastPatchResult;
  /** Templates currently cached. */
  readonly size: number;
  readonly capacity: number;
}

// ---------------------------------------------------------------------------------------------
// Base64 around slots.

/** One fixed part of a template, pre-encoded for each of the three ways it can meet the base64 grid. */
interface FixedPart {
  readonly bytes: Buffer;
  /** For k = 0, 1, 2 bytes taken by the group before it: base64 of the whole groups after them, and the bytes left over. */
  readonly aligned: readonly { readonly encoded: string; readonly rest: Buffer }[];
}

const EMPTY = Buffer.alloc(0);

function fixedPart(text: string): FixedPart {
  const bytes = Buffer.from(text, 'utf8');
  const aligned = [0, 1, 2].map((k) => {
    if (k > bytes.length) return { encoded: '', rest: EMPTY };
    const whole = Math.floor((bytes.length - k) / 3) * 3;
    return { encoded: bytes.subarray(k, k + whole).toString('base64'), rest: bytes.subarray(k + whole) };
  });
  return { bytes, aligned };
}

/**
 * Text with slots, whose base64 is mostly precomputed: the fixed parts are encoded once for each
 * alignment, and only the bytes around each slot are encoded per render. Base64 maps each 3 bytes
 * to 4 characters, so encoding the parts one by one gives the encoding of the whole.
 */
class Base64Template {
  private readonly fixed: readonly FixedPart[];
  readonly fixedBytes: number;

  /** `parts` are the fixed texts; a slot sits between each two of them. */
  constructor(parts: readonly string[]) {
    this.fixed = parts.map(fixedPart);
    this.fixedBytes = this.fixed.reduce((sum, part) => sum + part.bytes.length, 0);
  }

  /** Returns the base64 of the text with `slots[i]` (already UTF-8) between fixed parts i and i + 1. */
  encode(slots: readonly Buffer[]): string {
    let out = '';
    let carry: Buffer = EMPTY;
    for (let i = 0; i < this.fixed.length; i++) {
      const part = this.fixed[i]!;
      if (carry.length === 0) {
        const aligned = part.aligned[0]!;
        out += aligned.encoded;
        carry = aligned.rest;
      } else {
        const need = 3 - carry.length;
        if (part.bytes.length < need) {
          carry = Buffer.concat([carry, part.bytes]);
        } else {
          out += Buffer.concat([carry, part.bytes.subarray(0, need)]).toString('base64');
          const aligned = part.aligned[need]!;
          out += aligned.encoded;
          carry = aligned.rest;
        }
      }
      const slot = slots[i];
      if (slot !== undefined && slot.length > 0) {
        const joined = Buffer.concat([carry, slot]);
        const whole = joined.length - (joined.length % 3);
        out += joined.subarray(0, whole).toString('base64');
        carry = joined.subarray(whole);
      }
    }
    return out + carry.toString('base64');
  }
}

// ---------------------------------------------------------------------------------------------
// Templates.

/** Stand-ins for the per-pod strings while a template is rendered: text no escaping changes. */
const WORKLOAD_SLOT = '@@envoy-injector-fast-patch-workload@@';
const CONTAINER_SLOT = '@@envoy-injector-fast-patch-container@@';

/** The body of a JSON string (without its quotes), as JSON.stringify writes it. */
const jsonStringBody = (text: string): string => {
  const quoted = JSON.stringify(text);
  return quoted.slice(1, -1);
};

/** How each slot's value is written where the reference writes it. */
const SLOT_ENCODERS: Readonly<Record<string, (facts: PlanFacts) => string>> = {
  // In envoy-init's `--workload-name=` arg: escaped for the kubelet's `$(VAR)` expansion (as
  // buildInitContainer does to the whole arg, whose `--workload-name=` has no `$`), then as JSON.
  [WORKLOAD_SLOT]: (facts) => jsonStringBody(escapeEnvReferences(facts.workloadName)),
  // The kubectl default-container annotation's value, as JSON.
  [CONTAINER_SLOT]: (facts) => jsonStringBody(facts.firstContainer ?? ''),
};

interface Template {
  readonly base64: Base64Template;
  /** The slot of each gap between fixed parts, in order. */
  readonly slots: readonly string[];
  readonly operations: number;
}

/** Renders the template for `key`'s facts, or undefined when the slots cannot be told apart from the rest. */
function renderTemplate(
  shape: PatchShape,
  facts: PlanFacts,
  decision: Extract<Decision, { action: 'inject' }>,
  runtime: InjectorRuntime,
  settings: SettingsTable,
): Template | undefined {
  const stand: PlanFacts = {
    workloadName: WORKLOAD_SLOT,
    firstContainer: facts.firstContainer === undefined ? undefined : CONTAINER_SLOT,
    defaultContainerChosen: facts.defaultContainerChosen,
  };
  const { plan } = planFromFacts(stand, decision.proxy, runtime, settings);
  const ops = createPatch(shape, plan);
  const text = JSON.stringify(ops);
  // Each slot where it was put, and nowhere else (an override could spell a stand-in).
  const found: { at: number; slot: string }[] = [];
  for (const slot of Object.keys(SLOT_ENCODERS)) {
    let at = text.indexOf(slot);
    while (at !== -1) {
      found.push({ at, slot });
      at = text.indexOf(slot, at + slot.length);
    }
  }
  const expected = 1 + (facts.firstContainer !== undefined && !decision.proxy.nativeSidecar && !facts.defaultContainerChosen ? 1 : 0);
  if (found.length !== expected || !found.some((f) => f.slot === WORKLOAD_SLOT)) return undefined;
  found.sort((a, b) => a.at - b.at);
  const parts: string[] = [];
  let from = 0;
  for (const { at, slot } of found) {
    parts.push(text.slice(from, at));
    from = at + slot.length;
  }
  parts.push(text.slice(from));
  return { base64: new Base64Template(parts), slots: found.map((f) => f.slot), operations: ops.length };
}

/** Returns the patch of `template` for a pod of `facts`: its base64 and its size. */
function renderPatch(template: Template, facts: PlanFacts): { base64: string; bytes: number } {
  const slots = template.slots.map((slot) => Buffer.from(SLOT_ENCODERS[slot]!(facts), 'utf8'));
  const bytes = template.base64.fixedBytes + slots.reduce((sum, slot) => sum + slot.length, 0);
  return { base64: template.base64.encode(slots), bytes };
}

/**
 * The template keys made so far for each resolved settings list, by pod shape. resolveSettings
 * gives every pod of a combination of annotation texts the same (frozen) list, so its replicas get
 * the same key string: no JSON of ~40 settings per admission, and a string whose hash the template
 * cache's lookups already know. A list it resolved afresh (a key too long to remember) is new
 * each time and so is its entry here, dropped with the list.
 */
const KEYS = new WeakMap<readonly ResolvedSetting[], Map<string, string>>();

/**
 * Returns the template key of an injected pod: everything its patch is rendered from besides the
 * two slots. The effective proxy config is a pure function of the settings' annotation texts in
 * play (resolveSettings reads nothing else of the pod or its namespace; the config, runtime and
 * table are the patcher's own), so the texts stand for it; PatchShape and PlanFacts are what
 * createPatch and the plan read of the pod.
 */
function templateKey(pod: PodView, facts: PlanFacts, decision: Extract<Decision, { action: 'inject' }>): string {
  const shape =
    (pod.hasMetadata ? 'M' : 'm') +
    (pod.hasAnnotations ? 'A' : 'a') +
    (pod.hasInitContainers ? 'I' : 'i') +
    (pod.hasVolumes ? 'V' : 'v') +
    (facts.defaultContainerChosen ? 'D' : 'd') +
    (facts.firstContainer === undefined ? 'f' : 'F');
  let byShape = KEYS.get(decision.settings);
  if (byShape === undefined) KEYS.set(decision.settings, (byShape = new Map()));
  let key = byShape.get(shape);
  if (key === undefined) byShape.set(shape, (key = shape + JSON.stringify(decision.settings.map((s) => s.text ?? null))));
  return key;
}

/** Returns the fast path for pods admitted under `config` and `runtime`, with an LRU of `capacity` templates. */
export function createFastPatcher(
  config: InjectorConfig,
  runtime: InjectorRuntime,
  settings: SettingsTable = SETTINGS,
  capacity: number = FAST_PATCH_CACHE_SIZE,
): FastPatcher {
  // Map iteration order is insertion order: re-inserting on use keeps the least recently used first.
  // `null` remembers a key whose template could not be made, so it is not tried again.
  const cache = new Map<string, Template | null>();
  const remember = (key: string, template: Template | null) => {
    cache.set(key, template);
    if (cache.size > capacity) cache.delete(cache.keys().next().value as string);
  };

  return {
    get size() {
      return cache.size;
    },
    capacity,
    inject(object, ctx) {
      const { decision, warnings, pod } = evaluate(object, ctx, config, runtime, settings);
      if (decision.action !== 'inject' || pod === undefined) return { handled: false, why: 'not-injected' };
      const facts = planFacts(pod);
      if (facts.workloadName.length > FAST_PATCH_MAX_SLOT_LENGTH || (facts.firstContainer?.length ?? 0) > FAST_PATCH_MAX_SLOT_LENGTH) {
        return { handled: false, why: 'uncacheable' };
      }
      const key = templateKey(pod, facts, decision);
      if (key.length > FAST_PATCH_MAX_KEY_LENGTH) return { handled: false, why: 'uncacheable' };
      let template = cache.get(key);
      let hit = template !== undefined;
      if (template === null) return { handled: false, why: 'uncacheable' };
      if (template !== undefined) {
        cache.delete(key);
        cache.set(key, template);
      } else {
        template = renderTemplate(pod, facts, decision, runtime, settings);
        // Kept only once it gives this pod exactly the reference's answer: the whole decision
        // (which may still refuse a planned injection) and its patch.
        const reference = injectPod(object, ctx, config, runtime, settings);
        const referencePatch = Buffer.from(JSON.stringify(reference.patch), 'utf8').toString('base64');
        if (template === undefined || reference.decision.action !== 'inject' || renderPatch(template, facts).base64 !== referencePatch) {
          remember(key, null);
          return { handled: false, why: 'uncacheable' };
        }
        remember(key, template);
        hit = false;
      }
      const patch = renderPatch(template, facts);
      return {
        handled: true,
        injection: {
          decision,
          warnings,
          patchBase64: patch.base64,
          patchOperations: template.operations,
          patchBytes: patch.bytes,
          cache: hit ? 'hit' : 'miss',
        },
      };
    },
  };
}

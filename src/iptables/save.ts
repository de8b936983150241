// Reading `iptables-save` output: how many rules a backend holds, and what a previous run of the
// capture left in the nat table. Pure: text in, facts out.
import { CHAIN_PREFIX } from '../constants.ts';
import type { ExistingCapture } from './rules.ts';

/** One table of `iptables-save` output. */
export interface SavedTable {
  readonly name: string;
  /** Every chain, built-in and user-defined, in the order printed. */
  readonly chains: readonly string[];
  /** Every rule line (`-A CHAIN ...`), exactly as printed. */
  readonly rules: readonly string[];
}

/** Parses `iptables-save` output into its tables; comments and counters are ignored. */
export function parseIptablesSave(text: string): SavedTable[] {
  const tables: { name: string; chains: string[]; rules: string[] }[] = [];
  let current: { name: string; chains: string[]; rules: string[] } | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      current = { name: line.slice(1), chains: [], rules: [] };
      tables.push(current);
    } else if (current === undefined || line === 'COMMIT') {
      continue;
    } else if (line.startsWith(':')) {
      current.chains.push(line.slice(1).split(/\s+/)[0] ?? '');
    } else if (line.startsWith('-A ')) {
      current.rules.push(line);
    }
  }
  return tables;
}

/** Returns how many rules all tables of a save hold together. */
export function countSavedRules(tables: readonly SavedTable[]): number {
  return tables.reduce((sum, table) => sum + table.rules.length, 0);
}

/** Returns the chain a rule line belongs to (`-A CHAIN ...`). */
function ruleChain(rule: string): string {
  return rule.split(/\s+/)[1] ?? '';
}

/** Returns the chain a rule jumps or goes to, if any (`-j X` / `-g X`). */
export function ruleTarget(rule: string): string | undefined {
  // Quoted text (comments) may contain anything, " -j X" included: blank it out first.
  const match = /\s-[jg]\s+(\S+)/.exec(rule.replace(/"(?:[^"\\]|\\.)*"/g, '""'));
  return match?.[1];
}

const isOurs = (chain: string): boolean => chain.startsWith(CHAIN_PREFIX);

/** Returns what the capture left in a nat table: its chains and every jump into them from elsewhere. */
export function findExistingCapture(tables: readonly SavedTable[]): ExistingCapture {
  const nat = tables.find((table) => table.name === 'nat');
  if (nat === undefined) return { chains: [], jumps: [] };
  return {
    chains: nat.chains.filter(isOurs),
    // Rules inside our chains are flushed with them; only references from other chains need deleting.
    jumps: nat.rules.filter((rule) => !isOurs(ruleChain(rule)) && isOurs(ruleTarget(rule) ?? '')),
  };
}

/** Returns whether any table of a save holds a chain of the capture (a previous run used this backend). */
export function holdsCapture(tables: readonly SavedTable[]): boolean {
  return tables.some((table) => table.chains.some(isOurs));
}

/** Counts, per `from -> to`, the jumps into capture chains and the rules in each capture chain. */
export function summarizeCapture(tables: readonly SavedTable[]): {
  jumps: Readonly<Record<string, number>>;
  rulesPerChain: Readonly<Record<string, number>>;
} {
  const jumps: Record<string, number> = {};
  const rulesPerChain: Record<string, number> = {};
  const nat = tables.find((table) => table.name === 'nat');
  for (const chain of nat?.chains.filter(isOurs) ?? []) rulesPerChain[chain] = 0;
  for (const rule of nat?.rules ?? []) {
    const chain = ruleChain(rule);
    const target = ruleTarget(rule) ?? '';
    if (isOurs(chain)) rulesPerChain[chain] = (rulesPerChain[chain] ?? 0) + 1;
    else if (isOurs(target)) jumps[`${chain} -> ${target}`] = (jumps[`${chain} -> ${target}`] ?? 0) + 1;
  }
  return { jumps, rulesPerChain };
}

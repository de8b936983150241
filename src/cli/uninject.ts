// placeholder
import type { ManifestSource } from './manifests.ts';
export interface UninjectReport { readonly target: string; readonly outcome: 'removed' | 'not-injected' | 'refused'; readonly message: string }
export function uninjectSources(_sources: readonly ManifestSource[]): UninjectReport[] { return []; }
export function formatUninjectReports(_reports: readonly UninjectReport[]): string[] { return []; }

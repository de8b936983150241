// "Did you mean" for misspelt annotation keys.

/** Returns the edit distance (insertions, deletions, substitutions) between two strings. */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution);
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** Most edits that still make `word` a typo of another word: more than a third changed is a different word. */
function maxTypoDistance(word: string): number {
  return Math.max(2, Math.floor(word.length / 3));
}

/**
 * Returns the candidate closest to `word`, or undefined when none is plausibly what was meant.
 * Its cost is bounded by the candidates' lengths, not by the word's: a candidate whose length
 * differs from the word's by more than the typo distance cannot be within it (the distance is at
 * least the difference), so it is not compared, and a word much longer than every candidate (a
 * megabyte-long annotation key) is not compared at all.
 */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const limit = maxTypoDistance(word);
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    if (Math.abs(word.length - candidate.length) > limit) continue;
    const distance = editDistance(word, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= limit ? best : undefined;
}

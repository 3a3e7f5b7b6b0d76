/**
 * "Did you mean …?" for unknown config keys and POSTERN_* variables: the known name at the
 * smallest edit distance (Levenshtein), compared without case, '_' and '-', so that
 * max_message_size, MaxMessageSize and maxMesageSize all find maxMessageSize.
 */

const fold = (s: string): string => s.toLowerCase().replace(/[_-]/g, '');

/** Edit distance (insertions, deletions, substitutions), two rows of the classic table. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}

/**
 * The closest candidate, if it is close enough to be what was meant: within `maxDistance`
 * edits, by default a third of its length, at least 2.
 */
export function closest(word: string, candidates: Iterable<string>, maxDistance?: number): string | null {
  const w = fold(word);
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(w, fold(c));
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best !== null && bestDistance <= (maxDistance ?? Math.max(2, Math.floor(w.length / 3))) ? best : null;
}

/** " (did you mean X?)" or "". */
export function didYouMean(word: string, candidates: Iterable<string>): string {
  const match = closest(word, candidates);
  return match === null ? '' : ` (did you mean ${match}?)`;
}

/**
 * "Did you mean …?" for mistyped option names, enum values and backend types.
 *
 * Distance is the optimal-string-alignment variant of Damerau-Levenshtein (insert, delete,
 * substitute, swap two adjacent characters; each 1), compared case-insensitively. A candidate
 * is offered when it is within distance 2 of the word — but never when the edits would rewrite
 * most of a short word (`ab` is distance 2 from `id`, which helps nobody) — or when one is a
 * prefix of the other (`hostf` → `hostfwd`, `dnssearches` → `dnssearch`).
 *
 * Not a general fuzzy matcher: no phonetic or token matching, at most one suggestion.
 */

/** Optimal string alignment distance (Damerau-Levenshtein without repeated edits of a substring). */
export function editDistance(a: string, b: string): number {
  const n = a.length;
  const m = b.length;
  if (n === 0) return m;
  if (m === 0) return n;
  // Three rolling rows: i-2, i-1, i (the transposition looks two rows back).
  let prev2 = new Array<number>(m + 1).fill(0);
  let prev = new Array<number>(m + 1);
  let cur = new Array<number>(m + 1);
  for (let j = 0; j <= m; j++) prev[j] = j;
  for (let i = 1; i <= n; i++) {
    cur[0] = i;
    const ca = a.charCodeAt(i - 1);
    for (let j = 1; j <= m; j++) {
      const cb = b.charCodeAt(j - 1);
      const cost = ca === cb ? 0 : 1;
      let d = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && ca === b.charCodeAt(j - 2) && a.charCodeAt(i - 2) === cb) d = Math.min(d, prev2[j - 2]! + 1);
      cur[j] = d;
    }
    const t = prev2;
    prev2 = prev;
    prev = cur;
    cur = t;
  }
  return prev[m]!;
}

/**
 * The candidate closest to `word`, or undefined when none is close enough. Ties go to the
 * candidate listed first, so callers list canonical names before aliases.
 */
export function suggest(word: string, candidates: Iterable<string>, maxDistance = 2): string | undefined {
  const w = word.toLowerCase();
  if (w.length === 0) return undefined;
  let best: string | undefined;
  let bestScore = Infinity;
  for (const cand of candidates) {
    const c = cand.toLowerCase();
    if (c.length === 0) continue;
    let score = Infinity;
    const d = editDistance(w, c);
    // Require some of the word to survive: distance below the shorter length.
    if (d <= maxDistance && d < Math.min(w.length, c.length)) score = d;
    // A completion of the word beats a truncation of it; shorter differences first.
    else if (w.length >= 2 && c.startsWith(w)) score = maxDistance + 1 + (c.length - w.length) / 1000;
    else if (c.length >= 2 && w.startsWith(c)) score = maxDistance + 2 + (w.length - c.length) / 1000;
    if (score < bestScore) {
      bestScore = score;
      best = cand;
    }
  }
  return best;
}

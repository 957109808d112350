/**
 * Counting what arrived against what was said: lost, doubled and out of order, as the continuity tests print it.
 *
 * @module
 */

/** What arrived of `said`, counted. */
export interface Tally {
  /** Said, and never arrived. */
  lost: string[];
  /** Arrivals beyond the first of each message. */
  doubled: number;
  /** The first arrival of each message came in the order they were said. */
  inOrder: boolean;
  /** One line for the test's output: `label: n of m arrived, x lost, y doubled, in order`. */
  line(label: string): string;
}

/**
 * Counts `arrived` (in arrival order; what was not said is ignored) against `said` (in the order it was said).
 *
 * @example
 * ```ts
 * tally(["a", "b"], ["b", "a", "a"]); // lost [], doubled 1, inOrder false
 * ```
 */
export function tally(said: readonly string[], arrived: readonly string[]): Tally {
  const wanted = new Set(said);
  const relevant = arrived.filter((t) => wanted.has(t));
  const firsts = [...new Set(relevant)];
  const came = new Set(firsts);
  const lost = said.filter((t) => !came.has(t));
  const doubled = relevant.length - firsts.length;
  const expectedOrder = said.filter((t) => came.has(t));
  const inOrder = firsts.every((t, i) => t === expectedOrder[i]);
  return {
    lost,
    doubled,
    inOrder,
    line: (label) =>
      `${label}: ${firsts.length} of ${said.length} arrived, ${lost.length} lost, ${doubled} doubled, ` +
      (inOrder ? "in order" : "OUT OF ORDER"),
  };
}

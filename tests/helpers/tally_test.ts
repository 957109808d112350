import assert from "node:assert/strict";
import { tally } from "./tally.ts";

Deno.test("tally counts lost, doubled and out of order, and ignores what was not said", () => {
  const all = tally(["a", "b", "c"], ["x", "a", "b", "c"]);
  assert.deepEqual([all.lost, all.doubled, all.inOrder], [[], 0, true]);
  assert.equal(all.line("t"), "t: 3 of 3 arrived, 0 lost, 0 doubled, in order");

  const bad = tally(["a", "b", "c"], ["b", "a", "a"]);
  assert.deepEqual([bad.lost, bad.doubled, bad.inOrder], [["c"], 1, false]);
  assert.equal(bad.line("t"), "t: 2 of 3 arrived, 1 lost, 1 doubled, OUT OF ORDER");

  // A late double does not make the first arrivals out of order.
  const late = tally(["a", "b"], ["a", "b", "a"]);
  assert.deepEqual([late.doubled, late.inOrder], [1, true]);
});

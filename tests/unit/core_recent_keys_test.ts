import assert from "node:assert/strict";
import { RecentKeys } from "../../src/core/recent_keys.ts";

Deno.test("recent keys: the last `capacity` added are known, the older forgotten oldest first, over many rounds", () => {
  const recent = new RecentKeys(3);
  for (let i = 0; i < 10; i++) recent.add(`k${i}`);
  assert.deepEqual(
    Array.from({ length: 10 }, (_, i) => recent.has(`k${i}`)),
    [false, false, false, false, false, false, false, true, true, true],
  );
});

Deno.test("recent keys: adding a key already known changes nothing, so it is still forgotten in its turn", () => {
  const recent = new RecentKeys(3);
  recent.add("a");
  recent.add("b");
  recent.add("a");
  recent.add("c");
  assert.ok(recent.has("a") && recent.has("b") && recent.has("c"), "a counted once");
  recent.add("d");
  assert.equal(recent.has("a"), false, "a, the oldest, goes first");
  assert.ok(recent.has("b") && recent.has("c") && recent.has("d"));
});

import assert from "node:assert/strict";
import { renderTemplate, runeLength, splitRunes } from "../../src/core/text.ts";

/** True when `s` holds a lone (unpaired) UTF-16 surrogate. */
function hasLoneSurrogate(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff)) return true;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) return true;
  }
  return false;
}

Deno.test("runeLength counts code points, not UTF-16 units", () => {
  assert.equal(runeLength(""), 0);
  assert.equal(runeLength("abc"), 3);
  // Each emoji below is one astral code point, two UTF-16 units.
  assert.equal("😀".length, 2);
  assert.equal(runeLength("😀"), 1);
  assert.equal(runeLength("a😀b𝄞c"), 5);
  // A BMP accented letter is one code point; a combining sequence is two.
  assert.equal(runeLength("é"), 1);
  assert.equal(runeLength("e\u0301"), 2);
  // A ZWJ family is several code points even though it renders as one glyph.
  assert.equal(runeLength("👨‍👩‍👧"), 5);
});

Deno.test("splitRunes returns short text unchanged as a single piece", () => {
  assert.deepEqual(splitRunes("hello", 5), ["hello"]);
  assert.deepEqual(splitRunes("", 5), [""]);
  // 3 astral runes are 6 UTF-16 units: still fits in 3 runes.
  assert.deepEqual(splitRunes("😀😀😀", 3), ["😀😀😀"]);
});

Deno.test("splitRunes rejects a maximum below one rune", () => {
  assert.throws(() => splitRunes("abc", 0), RangeError);
});

Deno.test("splitRunes of 20,000 runes at 16,383 gives 2 pieces that join back exactly", () => {
  const text = "a".repeat(20_000);
  const pieces = splitRunes(text, 16_383);
  assert.equal(pieces.length, 2);
  for (const p of pieces) assert.ok(runeLength(p) <= 16_383);
  assert.equal(pieces.join(""), text);
});

Deno.test("splitRunes never exceeds the maximum and never splits a surrogate pair", () => {
  // Alternate astral and BMP characters so that cut points fall on both kinds; include spaces and newlines.
  const alphabet = ["😀", "a", "𝄞", " ", "é", "\n", "👍🏽", "中"];
  let seed = 12345;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  for (const max of [1, 2, 3, 7, 16, 100]) {
    let text = "";
    for (let i = 0; i < 500; i++) text += alphabet[next() % alphabet.length];
    const pieces = splitRunes(text, max);
    assert.equal(pieces.join(""), text, `max ${max}: pieces must join back`);
    for (const p of pieces) {
      assert.ok(runeLength(p) <= max, `max ${max}: piece of ${runeLength(p)} runes`);
      assert.ok(runeLength(p) >= 1, `max ${max}: empty piece`);
      assert.ok(!hasLoneSurrogate(p), `max ${max}: a piece holds half a surrogate pair`);
    }
  }
});

Deno.test("splitRunes keeps emoji whole when every rune is astral", () => {
  const text = "😀".repeat(25);
  const pieces = splitRunes(text, 10);
  assert.deepEqual(pieces.map(runeLength), [10, 10, 5]);
  for (const p of pieces) assert.ok(!hasLoneSurrogate(p));
  assert.equal(pieces.join(""), text);
});

Deno.test("splitRunes cuts after the last newline in the last quarter of a piece", () => {
  // The space near the end would be a later boundary, but a newline is preferred.
  const text = "x".repeat(80) + "\n" + "y".repeat(15) + " " + "z".repeat(50);
  const pieces = splitRunes(text, 100);
  assert.equal(pieces[0], "x".repeat(80) + "\n");
  assert.equal(pieces.join(""), text);
});

Deno.test("splitRunes cuts after whitespace when there is no newline near the end", () => {
  const text = "w".repeat(90) + " " + "v".repeat(50);
  const pieces = splitRunes(text, 100);
  assert.deepEqual(pieces, ["w".repeat(90) + " ", "v".repeat(50)]);
});

Deno.test("splitRunes ignores boundaries before the last quarter and cuts hard at the maximum", () => {
  // The only newline is at rune 10, far before the last quarter of a 100-rune piece.
  const text = "a".repeat(10) + "\n" + "b".repeat(150);
  const pieces = splitRunes(text, 100);
  assert.equal(runeLength(pieces[0]), 100);
  assert.equal(pieces.join(""), text);
});

Deno.test("renderTemplate fills known placeholders and leaves unknown ones as written", () => {
  assert.equal(renderTemplate("{nick} (xmpp)", { nick: "alice" }), "alice (xmpp)");
  assert.equal(renderTemplate("<{username}> ", { username: "bob" }), "<bob> ");
  assert.equal(
    renderTemplate("{displayname} aka {username}", { displayname: "Bob B", username: "bob" }),
    "Bob B aka bob",
  );
  assert.equal(renderTemplate("{nick} {unknown}", { nick: "a" }), "a {unknown}");
  assert.equal(renderTemplate("{nick}", { nick: undefined }), "{nick}");
  // Replacement text is inserted literally, even when it looks like a replace() pattern.
  assert.equal(renderTemplate("{nick}!", { nick: "$&$1" }), "$&$1!");
  // The same placeholder may appear twice.
  assert.equal(renderTemplate("{nick}/{nick}", { nick: "c" }), "c/c");
});

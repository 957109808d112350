import assert from "node:assert/strict";
import { explicitMentions, textNodes } from "./mentions.ts";

/** Which of @channel, @all, @here the server would count in `message`. */
function channelWide(message: string): string[] {
  const r = explicitMentions(message);
  return [r.channel && "channel", r.all && "all", r.here && "here"].filter((x): x is string => !!x);
}

Deno.test("@channel, @all and @here count as words, case-insensitively, with sentence punctuation", () => {
  assert.deepEqual(channelWide("@channel"), ["channel"]);
  assert.deepEqual(channelWide("hey @ALL look"), ["all"]);
  assert.deepEqual(channelWide("@Here?"), ["here"]);
  for (
    const m of ["@channel.", "@channel,", "@channel!", "(@channel)", "@channel:", "@channel...", "@channel_"]
  ) {
    assert.deepEqual(channelWide(m), ["channel"], m);
  }
  assert.deepEqual(channelWide("a.@channel"), ["channel"], "split further on . - :");
  assert.deepEqual(channelWide("_@channel"), ["channel"], "leading : . - _ are trimmed");
});

Deno.test("words that only contain them do not count", () => {
  for (
    const m of [
      "@channels",
      "@allison",
      "@hereby",
      "foo@channel",
      "@channel.foo",
      "@@channel",
      "channel",
      "@ channel",
    ]
  ) {
    assert.deepEqual(channelWide(m), [], m);
  }
});

Deno.test("code spans and code blocks do not count; a backslash escape still does", () => {
  assert.deepEqual(channelWide("`@channel`"), []);
  assert.deepEqual(channelWide("``a ` @all``"), []);
  assert.deepEqual(channelWide("```\n@channel\n```"), []);
  assert.deepEqual(channelWide("~~~~\n@here\n~~~\n~~~~"), [], "a shorter fence does not close it");
  assert.deepEqual(channelWide("text\n\n    @channel"), [], "indented code");
  assert.deepEqual(channelWide("text\n    @channel"), ["channel"], "a paragraph continuation is not code");
  assert.deepEqual(channelWide("\\@channel"), ["channel"]);
  assert.deepEqual(channelWide("say \\@all\\!"), ["all"]);
  assert.deepEqual(channelWide("`@channel"), ["channel"], "an unclosed backtick is text");
});

Deno.test("a character reference is text that ends a run", () => {
  assert.deepEqual(channelWide("@channe&#108;"), ["channel"]);
  assert.deepEqual(channelWide("@channe&#x6C; now"), ["channel"]);
  assert.deepEqual(channelWide("&#64;channel"), [], "what follows a reference is a new run");
});

Deno.test("an emoji separates text; usernames are found through keywords", () => {
  assert.deepEqual(textNodes("a :smile: b"), ["a ", " b"]);
  assert.deepEqual(channelWide("@channel :smile:"), ["channel"]);
  // After a letter ":smile:" is no emoji, and "@channel:smile" is one unknown word.
  assert.deepEqual(channelWide("@channel:smile:"), []);
  const found = explicitMentions(
    "ping @Bob, and @carol. not @dave",
    new Map([["@bob", ["b"]], ["@carol", ["c"]]]),
  );
  assert.deepEqual([...found.ids].sort(), ["b", "c"]);
});

Deno.test("an invisible joiner after @ is a separator, so the word is no mention", () => {
  for (const j of ["\u2060", "\u200d", "\u200b"]) {
    assert.deepEqual(channelWide(`@${j}channel @${j}all @${j}here`), [], JSON.stringify(j));
  }
});

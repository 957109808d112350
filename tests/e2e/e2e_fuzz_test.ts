/**
 * Property-based tests of the whole stanza → event → post and post → event → stanza paths, with real Prosody, the
 * stand-in and the bridge: random text (any Unicode XML can carry) in random stanza shapes (with or without ids,
 * with unknown payloads) arrives on the other side exactly (as its formatting converts), once and in order. The parser-level properties are in
 * xmpp_stanza_fuzz_test.ts and mm_websocket_fuzz_test.ts; this file checks what the connectors make of what the
 * parsers accept. Bounded in runs and time.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { xml } from "@xmpp/client";
import type { Element } from "@xmpp/xml";
import { startWorld, waitFor, type World } from "../helpers/harness.ts";
import { markdownToStyling } from "../../src/xmpp/markdown.ts";
import { stylingToMarkdown } from "../../src/xmpp/xeps/xep0393.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const RUNS = { numRuns: 25, interruptAfterTimeLimit: 20_000, endOnFailure: true };

/** Text as users type it, that XML 1.0 can carry (no C0 controls but tab and LF; a CR would become a LF). */
const text = fc.string({ unit: "grapheme", minLength: 1, maxLength: 80 }).map((s) =>
  // deno-lint-ignore no-control-regex
  s.replace(/[\u0000-\u0008\u000b-\u001f\ufffe\uffff]/g, "").replace(/[\ud800-\udfff]/g, "")
    // @channel and friends are defused on their way to Mattermost, on purpose (mm_mentions_test.ts).
    .replaceAll("@", "(at)")
);

/** Children nobody asked for, next to the body. */
const unknownChild = fc.oneof(
  text.map((t) => xml("thing", { xmlns: "urn:example:fuzz" }, t)),
  fc.constant(xml("html", { xmlns: "http://jabber.org/protocol/xhtml-im" }, xml("body", {}, "<b>x</b>"))),
  fc.constant(xml("markable", { xmlns: "urn:xmpp:chat-markers:0" })),
  fc.constant(xml("active", { xmlns: "http://jabber.org/protocol/chatstates" })),
);

const stanzaShape = fc.record({
  text,
  originId: fc.boolean(),
  extra: fc.array(unknownChild, { maxLength: 3 }),
});

let counter = 0;

/** What the bridge posted in the channel. */
function posted(w: World): string[] {
  return w.mm.posts(w.channel.id).filter((p) => p.user_id === w.mm.bot.id).map((p) => p.message);
}

/** What the bridge relayed into the room, as alice saw it. */
function relayed(w: World): string[] {
  return w.alice.messages.filter((m) => m.room === w.room && m.nick === "bridge").map((m) => m.body ?? "");
}

Deno.test(
  "e2e fuzz: any text in any message shape arrives on the other side exactly, once, in order",
  opts,
  async () => {
    const w = await startWorld();
    try {
      const bridge = await w.startBridge();
      let runs = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.array(stanzaShape, { minLength: 1, maxLength: 4 }),
          fc.array(text, { minLength: 1, maxLength: 4 }),
          async (stanzas, posts) => {
            runs++;
            const fromRoom = posted(w).length;
            const fromChannel = relayed(w).length;
            // A number in front keeps each message unique (and never a "/me" action).
            const bodies = stanzas.map((s) => `[${++counter}] ${s.text}`);
            for (const [i, s] of stanzas.entries()) {
              const children: Element[] = s.extra;
              await w.alice.sendGroupchat(w.room, bodies[i], {
                originId: s.originId ? undefined : false,
                children,
              });
            }
            const texts = posts.map((t) => `[${++counter}] ${t}`);
            for (const t of texts) await w.mm.postAs(w.bob.id, w.channel.id, t);
            // Formatting is converted on the way (xmpp_format_test.ts proves no text is lost by it): each side gets
            // exactly the converted text.
            const expected = texts.map((t) => `<bob> ${markdownToStyling(t)}`);
            await waitFor(
              () =>
                posted(w).length >= fromRoom + bodies.length &&
                relayed(w).length >= fromChannel + texts.length,
              "the batch on the other side",
              10_000,
            ).catch(() => {});
            await bridge.manager.bus.drain();
            assert.deepEqual(posted(w).slice(fromRoom), bodies.map((b) => stylingToMarkdown(b)));
            assert.deepEqual(relayed(w).slice(fromChannel), expected);
          },
        ),
        RUNS,
      );
      console.log(`e2e fuzz: ${runs} batches, ${counter} messages, each arrived exactly, once, in order`);
    } finally {
      await w.stop();
    }
  },
);

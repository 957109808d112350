/**
 * Property-based tests of the XMPP stanza → message path: whatever a room (or a hostile occupant, or a buggy
 * server) sends, the parser never throws, what it returns is well-typed, and text survives the real XML stream
 * parser byte for byte. Bounded in runs and time so they run with the normal suite.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { Parser, xml } from "@xmpp/xml";
import type { Element } from "../../src/xmpp/session/client.ts";
import { parseBody, parseGroupchat, renderBody } from "../../src/xmpp/protocol/stanza.ts";

const RUNS = { numRuns: 500, interruptAfterTimeLimit: 10_000 };
const ROOM = "hall@conference.localhost";

/** Text as users type it: any Unicode scalar values that XML 1.0 can carry (no C0 controls but tab and LF). */
const text = fc.string({ unit: "grapheme", maxLength: 40 }).map((s) =>
  // deno-lint-ignore no-control-regex
  s.replace(/[\u0000-\u0008\u000b-\u001f\ufffe\uffff]/g, "").replace(/[\ud800-\udfff]/g, "")
);
const junk = fc.oneof(text, fc.constantFrom("", " ", "<", "&amp;", "]]>", "__proto__", "constructor"));

/** A `from` of every shape: a room occupant, the room itself, no '@', odd case, junk. */
const from = fc.oneof(
  fc.constant(`${ROOM}/alice`),
  fc.constant(ROOM),
  fc.constant("HALL@Conference.LOCALHOST/Bob"),
  text.map((nick) => `${ROOM}/${nick}`),
  junk,
);

/** A child element of every kind the parser reads, with right or wrong attributes, or an unknown one. */
const child: fc.Arbitrary<Element> = fc.oneof(
  text.map((t) => xml("body", {}, t)),
  junk.map((t) => xml("subject", {}, t)),
  fc.oneof(fc.constant("2026-11-29T18:00:00Z"), junk).map((stamp) =>
    xml("delay", { xmlns: "urn:xmpp:delay", stamp })
  ),
  fc.tuple(fc.oneof(fc.constant(ROOM), junk), junk).map(([by, id]) =>
    xml("stanza-id", { xmlns: "urn:xmpp:sid:0", by, id })
  ),
  junk.map((id) => xml("origin-id", { xmlns: "urn:xmpp:sid:0", id })),
  junk.map((id) => xml("occupant-id", { xmlns: "urn:xmpp:occupant-id:0", id })),
  fc.tuple(junk, junk).map(([cond, t]) =>
    xml(
      "error",
      { type: "cancel" },
      xml(cond.replace(/[^a-z-]/g, "") || "x", { xmlns: "urn:ietf:params:xml:ns:xmpp-stanzas" }),
      xml("text", { xmlns: "urn:ietf:params:xml:ns:xmpp-stanzas" }, t),
    )
  ),
  fc.tuple(fc.constantFrom("x", "thread", "reply", "html"), junk).map(([name, t]) => xml(name, {}, t)),
);

/** A stanza of any name and type, with any attributes and up to 6 children. */
const stanza = fc.record({
  name: fc.constantFrom("message", "message", "message", "presence", "iq"),
  type: fc.oneof(fc.constantFrom("groupchat", "groupchat", "error", "chat", "normal"), junk),
  from,
  id: fc.option(junk, { nil: undefined }),
  children: fc.array(child, { maxLength: 6 }),
}).map(({ name, type, from, id, children }) => xml(name, { type, from, id }, ...children) as Element);

function isOptionalString(v: unknown): boolean {
  return v === undefined || typeof v === "string";
}

Deno.test("stanza fuzz: parseGroupchat never throws, and what it returns is well-typed", () => {
  fc.assert(
    fc.property(stanza, (el) => {
      const msg = parseGroupchat(el);
      if (msg === null) return;
      assert.ok(el.is("message"), "a non-message was parsed");
      assert.ok(["groupchat", "error"].includes(el.attrs.type), "a message of another type was parsed");
      assert.equal(typeof msg.room, "string");
      assert.ok(msg.room.includes("@") && msg.room === msg.room.toLowerCase(), `bad room ${msg.room}`);
      assert.equal(typeof msg.nick, "string");
      for (const key of ["id", "originId", "stanzaId", "occupantId", "body", "subject"] as const) {
        assert.ok(isOptionalString(msg[key]), `${key} is ${typeof msg[key]}`);
      }
      assert.equal(typeof msg.delayed, "boolean");
      assert.ok(msg.stamp === undefined || Number.isFinite(msg.stamp), `stamp ${msg.stamp}`);
      // A stanza-id is trusted only when the room itself assigned it.
      if (msg.stanzaId !== undefined) {
        const byRoom = el.getChildren("stanza-id", "urn:xmpp:sid:0")
          .some((c: Element) => String(c.attrs.by).toLowerCase() === msg.room);
        assert.ok(byRoom, "a stanza-id not assigned by the room was trusted");
      }
      if (msg.error) assert.equal(typeof msg.error.condition, "string");
    }),
    RUNS,
  );
});

/** Feeds `stanza` through the XML stream parser the client uses, as the server's bytes would arrive. */
function throughParser(el: Element): Element {
  const parser = new Parser();
  let got: Element | undefined;
  parser.on("element", (e: Element) => got = e);
  parser.write(`<stream:stream xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams">`);
  parser.write(el.toString());
  assert.ok(got, `the parser produced no element from ${el.toString()}`);
  return got;
}

Deno.test("stanza fuzz: text and ids survive the real XML stream parser unchanged", () => {
  fc.assert(
    fc.property(stanza, (el) => {
      // Everything read from the stanza, not the stanza object itself (the parser's has other attributes' order).
      const { stanza: _direct, ...direct } = parseGroupchat(el) ?? {};
      const { stanza: _parsed, ...parsed } = parseGroupchat(throughParser(el)) ?? {};
      assert.deepEqual(parsed, direct);
    }),
    RUNS,
  );
});

Deno.test("stanza fuzz: a body read as an action and rendered again is the body that was sent", () => {
  fc.assert(
    fc.property(
      fc.oneof(text, text.map((t) => `/me ${t}`), fc.constantFrom("/me", "/me ", "/me  ", "/meow")),
      (body) => {
        const { text, action } = parseBody(body);
        assert.equal(renderBody(text, { action }), body);
        if (action) assert.notEqual(text.trim(), "");
      },
    ),
    RUNS,
  );
});

// Cases the properties above once found or are most likely to find, kept as plain regression tests.
Deno.test("stanza parser: an unparsable delay stamp, a foreign stanza-id and a junk from are harmless", () => {
  const msg = parseGroupchat(
    xml(
      "message",
      { type: "groupchat", from: `${ROOM}/x` },
      xml("body", {}, "hi"),
      xml("delay", { xmlns: "urn:xmpp:delay", stamp: "yesterday" }),
      xml("stanza-id", { xmlns: "urn:xmpp:sid:0", by: "evil@example.org", id: "forged" }),
    ) as Element,
  );
  assert.ok(msg);
  assert.equal(msg.stamp, undefined);
  assert.equal(msg.delayed, true);
  assert.equal(msg.stanzaId, undefined);
  assert.equal(parseGroupchat(xml("message", { type: "groupchat", from: "__proto__" }) as Element), null);
});

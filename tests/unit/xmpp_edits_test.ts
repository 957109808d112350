/**
 * XEP-0308 corrections, XEP-0424 retractions and XEP-0425 moderation announcements: building what the bridge sends,
 * and reading what rooms send (parse and the connector's readers). XEP-0425 is tested on stanzas only: Prosody 0.12
 * does not implement it.
 */
import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import type { IncomingBase } from "../../src/xmpp/incoming.ts";
import { parseGroupchat } from "../../src/xmpp/protocol/stanza.ts";
import {
  NS_CORRECT,
  NS_FALLBACK,
  NS_FASTEN,
  NS_HINTS,
  NS_MODERATE,
  NS_MODERATE_0,
  NS_MUC_USER,
  NS_OCCUPANT_ID,
  NS_RETRACT,
  NS_RETRACT_0,
  NS_SID,
} from "../../src/xmpp/protocol/ns.ts";
import { buildCorrection, parseCorrection, readCorrection } from "../../src/xmpp/xeps/xep0308.ts";
import {
  buildRetraction,
  parseRetraction,
  readRetraction,
  RETRACTION_FALLBACK,
} from "../../src/xmpp/xeps/xep0424.ts";
import { parseModeration, readModeration } from "../../src/xmpp/xeps/xep0425.ts";
import type { Element } from "../../src/xmpp/session/client.ts";
import { Occupants } from "../../src/xmpp/muc/occupants.ts";

const ROOM = "room@conference.example.org";

function from(nick: string, ...children: Element[]): Element {
  return xml(
    "message",
    { type: "groupchat", from: nick ? `${ROOM}/${nick}` : ROOM, id: "m2" },
    xml("stanza-id", { xmlns: NS_SID, id: "sid-2", by: ROOM }),
    ...children,
  );
}

function base(nick: string): IncomingBase {
  return {
    eventId: "sid-2",
    ids: ["sid-2", `${nick}/m2`],
    portal: { network: "xmpp", channel: ROOM },
    sender: { network: "xmpp", id: `occ-${nick}`, name: nick },
    timestamp: 7,
  };
}

function read(reader: typeof readCorrection, stanza: Element, nick: string) {
  return reader(parseGroupchat(stanza)!, base(nick));
}

Deno.test("a correction is built with the whole new body, its own id and origin-id, and the original's id", () => {
  const stanza = buildCorrection(ROOM, "fixed text", "c1", "orig-1");
  assert.equal(stanza.attrs.type, "groupchat");
  assert.equal(stanza.attrs.to, ROOM);
  assert.equal(stanza.attrs.id, "c1");
  assert.equal(stanza.getChild("origin-id", NS_SID)?.attrs.id, "c1");
  assert.equal(stanza.getChildText("body"), "fixed text");
  assert.equal(stanza.getChild("replace", NS_CORRECT)?.attrs.id, "orig-1");
  assert.equal(parseCorrection(stanza), "orig-1");
});

Deno.test("a room's correction is read as an edit of the corrector's own message (nick/id), /me kept", () => {
  const edit = read(readCorrection, from("bob", xml("body", {}, "/me waves"), replace("m1")), "bob");
  assert.deepEqual(edit, {
    kind: "edit",
    eventId: "sid-2",
    portal: { network: "xmpp", channel: ROOM },
    sender: { network: "xmpp", id: "occ-bob", name: "bob" },
    timestamp: 7,
    targetId: "bob/m1",
    text: "waves",
    action: true,
  });
  // Not a correction: not this reader's. Empty: dropped. From the room itself: not an occupant's correction.
  assert.equal(read(readCorrection, from("bob", xml("body", {}, "hi")), "bob"), undefined);
  assert.equal(read(readCorrection, from("bob", xml("body", {}, "  "), replace("m1")), "bob"), null);
  assert.equal(read(readCorrection, from("", xml("body", {}, "x"), replace("m1")), ""), undefined);
  assert.equal(parseCorrection(from("bob", xml("replace", { xmlns: NS_CORRECT }))), undefined, "no id");
});

function replace(id: string): Element {
  return xml("replace", { xmlns: NS_CORRECT, id });
}

Deno.test("a retraction names the room's stanza-id, with a XEP-0428 fallback body and a store hint", () => {
  const stanza = buildRetraction(ROOM, "r1", "sid-1");
  assert.equal(stanza.attrs.id, "r1");
  assert.equal(stanza.getChild("origin-id", NS_SID)?.attrs.id, "r1");
  assert.equal(stanza.getChild("retract", NS_RETRACT)?.attrs.id, "sid-1");
  assert.equal(stanza.getChild("fallback", NS_FALLBACK)?.attrs.for, NS_RETRACT);
  assert.equal(stanza.getChildText("body"), RETRACTION_FALLBACK);
  assert.ok(stanza.getChild("store", NS_HINTS));
  assert.equal(parseRetraction(stanza), "sid-1");
});

Deno.test("an occupant's retraction is read in the current form and as XEP-0424 0.3 wrote it", () => {
  const current = read(
    readRetraction,
    from("bob", xml("retract", { xmlns: NS_RETRACT, id: "sid-1" })),
    "bob",
  );
  assert.deepEqual(current, {
    kind: "remove",
    eventId: "sid-2",
    portal: { network: "xmpp", channel: ROOM },
    sender: { network: "xmpp", id: "occ-bob", name: "bob" },
    timestamp: 7,
    targetId: "sid-1",
  });
  const old = from(
    "bob",
    xml("apply-to", { xmlns: NS_FASTEN, id: "sid-1" }, xml("retract", { xmlns: NS_RETRACT_0 })),
  );
  assert.equal(read(readRetraction, old, "bob")?.kind, "remove");
  assert.equal((read(readRetraction, old, "bob") as { targetId: string }).targetId, "sid-1");
  assert.equal(read(readRetraction, from("bob", xml("body", {}, "hi")), "bob"), undefined);
  assert.equal(parseRetraction(from("bob", xml("retract", { xmlns: NS_RETRACT }))), undefined, "no id");
});

/** The room's announcement of a moderation (XEP-0425 0.3.0, §4 example). */
function moderated(by: string, targetId = "sid-1"): Element {
  return xml(
    "retract",
    { xmlns: NS_RETRACT, id: targetId },
    xml(
      "moderated",
      { xmlns: NS_MODERATE, by },
      xml("occupant-id", { xmlns: NS_OCCUPANT_ID, id: "occ-mod" }),
    ),
    xml("reason", {}, "spam"),
  );
}

Deno.test("XEP-0425: the room's announcement is a moderated removal by the moderator; an occupant's is dropped", () => {
  const announcement = from("", moderated(`${ROOM}/mod`), xml("body", {}, "This message has been moderated"));
  assert.deepEqual(parseModeration(announcement), {
    targetId: "sid-1",
    by: `${ROOM}/mod`,
    occupantId: "occ-mod",
    reason: "spam",
  });
  assert.deepEqual(read(readModeration, announcement, ""), {
    kind: "remove",
    eventId: "sid-2",
    portal: { network: "xmpp", channel: ROOM },
    sender: { network: "xmpp", id: "occ-mod", name: "mod" },
    timestamp: 7,
    targetId: "sid-1",
    moderated: true,
  });
  // The same payload from an occupant would let anyone remove anyone's message: dropped, not read as a retraction.
  const forged = from("mallory", moderated(`${ROOM}/mod`));
  assert.equal(read(readModeration, forged, "mallory"), null);
  assert.equal(parseRetraction(forged), undefined, "nor taken for the occupant's own retraction");
  // XEP-0425 0.2 (`apply-to` … `moderated` … `retract`), as ejabberd and mod_muc_moderation sent it.
  const old = from(
    "",
    xml(
      "apply-to",
      { xmlns: NS_FASTEN, id: "sid-9" },
      xml("moderated", { xmlns: NS_MODERATE_0, by: `${ROOM}/mod` }, xml("retract", { xmlns: NS_RETRACT_0 })),
    ),
  );
  assert.deepEqual(parseModeration(old), { targetId: "sid-9", by: `${ROOM}/mod` });
  assert.equal((read(readModeration, old, "") as { moderated?: boolean }).moderated, true);
  assert.equal(parseModeration(from("", moderated(`${ROOM}/mod`, ""))), undefined, "no id");
});

Deno.test("the real JIDs a room reveals in presences are remembered per occupant, until it leaves", () => {
  const realJids = new Occupants();
  const presence = (nick: string, jid?: string, type?: string) =>
    xml(
      "presence",
      { from: `${ROOM}/${nick}`, ...(type ? { type } : {}) },
      xml(
        "x",
        { xmlns: NS_MUC_USER },
        xml("item", { affiliation: "none", role: "participant", ...(jid ? { jid } : {}) }),
      ),
    );
  realJids.handlePresence(presence("carol", "Carol@Example.org/phone"));
  realJids.handlePresence(presence("anon"));
  assert.equal(realJids.realJid(ROOM, "carol"), "carol@example.org", "bare and lowercased");
  assert.equal(realJids.realJid(ROOM.toUpperCase(), "carol"), "carol@example.org");
  assert.equal(realJids.realJid(ROOM, "anon"), undefined, "a semi-anonymous room reveals none");
  realJids.handlePresence(presence("carol", undefined, "unavailable"));
  assert.equal(realJids.realJid(ROOM, "carol"), undefined, "another may take the nick once she left");
});

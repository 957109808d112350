/** What the room's presences tell: arrivals and departures once each, nick changes as such, ids kept. */
import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import { Occupants } from "../../src/xmpp/muc/occupants.ts";
import { NS_MUC_USER, NS_OCCUPANT_ID } from "../../src/xmpp/protocol/ns.ts";
import { photoUpdate } from "../../src/xmpp/xeps/xep0153.ts";

const ROOM = "Room@muc.example.org";

function presence(nick: string, opts: { type?: string; jid?: string; newNick?: string; id?: string } = {}) {
  const item = xml("item", {
    affiliation: "none",
    role: opts.type ? "none" : "participant",
    jid: opts.jid,
    nick: opts.newNick,
  });
  const statuses = opts.newNick ? [xml("status", { code: "303" })] : [];
  return xml(
    "presence",
    { from: `${ROOM}/${nick}`, type: opts.type },
    xml("x", { xmlns: NS_MUC_USER }, item, ...statuses),
    ...(opts.id ? [xml("occupant-id", { xmlns: NS_OCCUPANT_ID, id: opts.id })] : []),
  );
}

Deno.test("an arrival and a departure are reported once each; a status update is not an arrival", () => {
  const occupants = new Occupants();
  const joined = occupants.handlePresence(presence("carol", { jid: "Carol@Example.org/phone", id: "oc1" }));
  assert.deepEqual(joined, {
    occupant: {
      room: "room@muc.example.org",
      nick: "carol",
      realJid: "carol@example.org",
      occupantId: "oc1",
    },
    present: true,
  });
  assert.equal(
    occupants.handlePresence(presence("carol", { jid: "carol@example.org/phone", id: "oc1" })),
    undefined,
  );
  assert.equal(occupants.get(ROOM, "carol")?.occupantId, "oc1");
  const left = occupants.handlePresence(presence("carol", { type: "unavailable" }));
  assert.equal(left?.present, false);
  assert.equal(left?.occupant.realJid, "carol@example.org", "the departure says who left");
  assert.equal(occupants.handlePresence(presence("carol", { type: "unavailable" })), undefined, "gone once");
});

Deno.test("a nick change is neither a departure nor an arrival, but names the old nick", () => {
  const occupants = new Occupants();
  occupants.handlePresence(presence("carol", { id: "oc1" }));
  assert.equal(
    occupants.handlePresence(presence("carol", { type: "unavailable", newNick: "caro" })),
    undefined,
  );
  const renamed = occupants.handlePresence(presence("caro", { id: "oc1" }));
  assert.deepEqual(renamed, {
    occupant: { room: "room@muc.example.org", nick: "caro", occupantId: "oc1" },
    present: true,
    renamedFrom: "carol",
  });
  assert.deepEqual(occupants.nicks("room@muc.example.org"), ["caro"]);
});

Deno.test("a presence naming another picture (XEP-0153) is a picture change; one saying nothing keeps the last", () => {
  const occupants = new Occupants();
  const withPhoto = (hash?: string) => {
    const p = presence("dora");
    if (hash !== undefined) p.append(photoUpdate(hash || undefined));
    return p;
  };
  const a = "a".repeat(40);
  const b = "b".repeat(40);
  assert.equal(occupants.handlePresence(withPhoto(a))?.occupant.photoHash, a, "the arrival names it");
  assert.equal(occupants.handlePresence(withPhoto(a)), undefined, "the same picture: no change");
  assert.equal(occupants.handlePresence(withPhoto()), undefined, "no <x>: says nothing");
  assert.equal(occupants.get(ROOM, "dora")?.photoHash, a, "and the picture is kept");
  const changed = occupants.handlePresence(withPhoto(b));
  assert.equal(changed?.pictureChanged, true);
  assert.equal(changed?.occupant.photoHash, b);
  const removed = occupants.handlePresence(withPhoto(""));
  assert.equal(removed?.pictureChanged, true, "an empty <photo/>: no picture any more");
  assert.equal(removed?.occupant.photoHash, null);
});

Deno.test("a <photo> naming no SHA-1 (a removed XEP-0084 avatar, as Prosody says it) is a change to none", () => {
  const occupants = new Occupants();
  const withPhoto = (hash: string) => {
    const p = presence("erin");
    p.append(photoUpdate(hash));
    return p;
  };
  occupants.handlePresence(withPhoto("c".repeat(40)));
  const removed = occupants.handlePresence(withPhoto("8631ca2b-2e14-4885-b1ac-c0799f724dce"));
  assert.equal(removed?.pictureChanged, true);
  assert.equal(removed?.occupant.photoHash, null);
});

import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import type { Element } from "../../src/xmpp/session/client.ts";
import { type LeaveReason, MucRooms } from "../../src/xmpp/muc/rooms.ts";
import { NS_MUC_USER } from "../../src/xmpp/protocol/ns.ts";

const ROOM = "hall@conference.localhost";

/** The room's presence about our own occupant `nick` (status 110), with the extra status codes. */
function selfPresence(nick: string, codes: string[], type?: string): Element {
  return xml(
    "presence",
    { from: `${ROOM}/${nick}`, type },
    xml(
      "x",
      { xmlns: NS_MUC_USER },
      xml("item", { affiliation: "none", role: type === "unavailable" ? "none" : "participant" }),
      ...["110", ...codes].map((code) => xml("status", { code })),
    ),
  );
}

Deno.test("a kick in the same read as the join's answer is not lost", async () => {
  const left: Array<[string, LeaveReason]> = [];
  const muc = new MucRooms(() => Promise.resolve(), (room, reason) => left.push([room, reason]));
  const joining = muc.join(ROOM, "bridge");
  await Promise.resolve(); // the join presence is sent
  // Both stanzas are handled before join() resumes, as when they arrive in one TCP read.
  muc.handlePresence(selfPresence("bridge", []));
  muc.handlePresence(selfPresence("bridge", ["307"], "unavailable"));
  assert.equal(await joining, "bridge");
  assert.deepEqual(left, [[ROOM, "kicked"]]);
  assert.equal(muc.nickIn(ROOM), undefined, "still counted as an occupant after the kick");
});

Deno.test("a join is done when the room answers with our own presence", async () => {
  const muc = new MucRooms(() => Promise.resolve());
  const joining = muc.join(ROOM, "bridge");
  await Promise.resolve();
  muc.handlePresence(selfPresence("bridge", ["100"]));
  assert.equal(await joining, "bridge");
  assert.equal(muc.nickIn(ROOM), "bridge");
});

Deno.test("a nick change: both nicks are ours until the room answers; 303 moves us, a refusal keeps the old one", async () => {
  const sent: Element[] = [];
  const muc = new MucRooms((el) => (sent.push(el), Promise.resolve()));
  const joining = muc.join(ROOM, "bob");
  await Promise.resolve();
  muc.handlePresence(selfPresence("bob", []));
  await joining;

  await muc.changeNick(ROOM, "Bobby");
  assert.equal(sent.at(-1)?.attrs.to, `${ROOM}/Bobby`);
  assert.ok(muc.isOurNick(ROOM, "bob") && muc.isOurNick(ROOM, "Bobby"), "the room may show either meanwhile");
  const leaving = selfPresence("bob", ["303"], "unavailable");
  leaving.getChild("x", NS_MUC_USER)!.getChild("item")!.attrs.nick = "Bobby";
  muc.handlePresence(leaving);
  muc.handlePresence(selfPresence("Bobby", []));
  assert.equal(muc.nickIn(ROOM), "Bobby");
  assert.ok(!muc.isOurNick(ROOM, "bob"));

  await muc.changeNick(ROOM, "taken");
  muc.handlePresence(
    xml(
      "presence",
      { from: `${ROOM}/taken`, type: "error" },
      xml(
        "error",
        { type: "cancel" },
        xml("conflict", {
          xmlns: "urn:ietf:params:xml:ns:xmpp-stanzas",
        }),
      ),
    ),
  );
  assert.equal(muc.nickIn(ROOM), "Bobby", "refused: the nick stays");
  assert.ok(!muc.isOurNick(ROOM, "taken"));
});

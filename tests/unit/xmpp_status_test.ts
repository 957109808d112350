import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import type { Element } from "../../src/xmpp/session/client.ts";
import type { Sender } from "../../src/core/events.ts";
import type { UserStatus } from "../../src/core/bridge.ts";
import { MucRooms } from "../../src/xmpp/muc/rooms.ts";
import { NS_MUC_USER } from "../../src/xmpp/protocol/ns.ts";
import { OccupantStatuses, presenceOf, statusOfShow } from "../../src/xmpp/status.ts";
import { sleep, waitUntil } from "../helpers/wait.ts";

const ROOM = "hall@conference.localhost";
const OTHER = "lobby@conference.localhost";
const ALICE: Sender = { network: "xmpp", id: "occ-1", name: "alice", accountId: "alice@localhost" };

Deno.test("Mattermost statuses as presence: online is plain, offline is extended away with a text", () => {
  assert.deepEqual(presenceOf("online"), {});
  assert.deepEqual(presenceOf("away"), { show: "away" });
  assert.deepEqual(presenceOf("dnd"), { show: "dnd" });
  assert.equal(presenceOf("offline").show, "xa");
  assert.ok(presenceOf("offline").status);
});

Deno.test("a presence's show as a Mattermost status: xa is away, chat and none are online", () => {
  const shows = (show?: string) =>
    statusOfShow(xml("presence", {}, ...(show ? [xml("show", {}, show)] : [])));
  assert.deepEqual([shows(), shows("chat"), shows("away"), shows("xa"), shows("dnd")], [
    "online",
    "online",
    "away",
    "away",
    "dnd",
  ]);
});

Deno.test("OccupantStatuses reports the last status of a window once, and offline only when gone from every room", async () => {
  const reports: UserStatus[] = [];
  const statuses = new OccupantStatuses(50, (c) => reports.push(c.status));
  for (const status of ["away", "dnd", "online", "away"] as const) statuses.present(ROOM, ALICE, status);
  await waitUntil("the window's report", () => reports.length === 1);
  assert.deepEqual(reports, ["away"]);
  // In a second room as well (the same account: another occupant-id), then gone from the first: still there.
  statuses.present(OTHER, { ...ALICE, id: "occ-2" }, "away");
  statuses.gone(ROOM, ALICE);
  await sleep(150);
  assert.deepEqual(reports, ["away"], "away in the other room: nothing to report");
  statuses.gone(OTHER, ALICE);
  await waitUntil("offline", () => reports.length === 2);
  assert.deepEqual(reports, ["away", "offline"]);
  statuses.clear();
});

Deno.test("a presence set while a join is under way is sent once the join is done", async () => {
  const sent: Element[] = [];
  const muc = new MucRooms((el) => {
    sent.push(el);
    return Promise.resolve();
  });
  const joining = muc.join(ROOM, "bob");
  await Promise.resolve();
  await muc.setPresence({ show: "dnd" });
  muc.handlePresence(
    xml(
      "presence",
      { from: `${ROOM}/bob` },
      xml("x", { xmlns: NS_MUC_USER }, xml("item", { role: "participant" }), xml("status", { code: "110" })),
    ),
  );
  await joining;
  const last = sent.at(-1)!;
  assert.equal(last.attrs.to, `${ROOM}/bob`);
  assert.equal(last.getChildText("show"), "dnd", "the room learns the presence that changed during the join");
  // Later joins carry it in the join itself.
  void muc.join(OTHER, "bob").catch(() => {});
  await Promise.resolve();
  assert.equal(sent.at(-1)!.getChildText("show"), "dnd");
  muc.resetAll();
});

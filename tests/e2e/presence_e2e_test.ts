/**
 * Presence across the bridge against a real Prosody and the Mattermost stand-in: a Mattermost user's status shows as
 * their puppet's presence in the room (read by polling, in batches), an XMPP occupant's `<show/>` becomes their
 * Mattermost puppet's status, a burst of presences is coalesced, and ghosts appear only for users who did something:
 * a channel of many members opens no session and joins no occupant per member.
 */
import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import { componentEnv, postsMatching, sharedWorlds, waitFor, type World } from "../helpers/harness.ts";
import type { Element } from "../../src/xmpp/session/client.ts";
import { OFFLINE_STATUS_TEXT } from "../../src/xmpp/status.ts";
import { NS_MUC_USER } from "../../src/xmpp/protocol/ns.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const worlds = sharedWorlds("presence");

/** Statuses are read this often in these tests (the default is a minute). */
const POLL = { BRIDGE_STATUS_POLL_INTERVAL: "0.3" };

/** Component puppets, with statuses read every {@link POLL}. */
function puppetsEnv(w: World): Record<string, string> {
  return { ...componentEnv(w.prosody), ...POLL };
}

/** Sets `userId`'s status as that user does in Mattermost (`PUT /users/{id}/status`). */
async function setStatus(w: World, user: { id: string; token: string }, status: string): Promise<void> {
  const res = await fetch(`${w.mm.url}/api/v4/users/${user.id}/status`, {
    method: "PUT",
    headers: { Authorization: `Bearer ${user.token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ user_id: user.id, status }),
  });
  assert.equal(res.status, 200, await res.text());
}

/** `POST /users/{id}/typing` as the user themself, as a Mattermost client does. */
async function typeAs(w: World, user: { id: string; token: string }): Promise<void> {
  const res = await fetch(`${w.mm.url}/api/v4/users/${user.id}/typing`, {
    method: "POST",
    headers: { Authorization: `Bearer ${user.token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ channel_id: w.channel.id }),
  });
  assert.equal(res.status, 200, await res.text());
}

/** The Mattermost status of `userId`, as the admin reads it. */
async function statusOf(w: World, userId: string): Promise<string> {
  const res = await fetch(`${w.mm.url}/api/v4/users/${userId}/status`, {
    headers: { Authorization: `Bearer ${w.mm.admin.token}` },
  });
  return (await res.json()).status;
}

/** Every presence alice receives from the room's occupants, by nick, in order. */
function recordPresences(w: World): Map<string, Element[]> {
  const seen = new Map<string, Element[]>();
  w.alice.onStanza((s: Element) => {
    const from = String(s.attrs.from ?? "");
    if (!s.is("presence") || !from.startsWith(`${w.room}/`)) return;
    const nick = from.slice(w.room.length + 1);
    seen.set(nick, [...seen.get(nick) ?? [], s]);
  });
  return seen;
}

/** The `<show/>` of the last presence of `nick`, "" when it has none. */
function lastShow(seen: Map<string, Element[]>, nick: string): string | undefined {
  const last = seen.get(nick)?.at(-1);
  return last ? last.getChildText("show") ?? "" : undefined;
}

Deno.test(
  "component: a Mattermost user's status shows as their puppet's presence; offline is extended away",
  opts,
  async () => {
    await worlds.run(async (w) => {
      const seen = recordPresences(w);
      await w.startBridge(puppetsEnv(w));
      await w.mm.postAs(w.bob.id, w.channel.id, "hello");
      await w.alice.waitForMessages(w.room, (m) => m.nick === "bob" && m.body === "hello", 1, 15_000);
      assert.equal(lastShow(seen, "bob"), "", "the puppet joined available");

      for (const [status, show] of [["away", "away"], ["dnd", "dnd"], ["offline", "xa"], ["online", ""]]) {
        await setStatus(w, w.bob, status);
        await waitFor(() => lastShow(seen, "bob") === show, `bob's puppet showing "${show}" for ${status}`);
        if (status === "offline") {
          const presence = seen.get("bob")!.at(-1)!;
          assert.equal(presence.getChildText("status"), OFFLINE_STATUS_TEXT);
          assert.equal(presence.attrs.type, undefined, "offline on Mattermost stays in the room");
        }
      }
    });
  },
);

Deno.test(
  "component: a channel of many members joins and reads only those who did something; statuses join no one",
  opts,
  async () => {
    await worlds.run(async (w) => {
      const members = Array.from({ length: 40 }, (_, i) => w.mm.createUser(`member${i}`));
      for (const m of members) w.mm.addMember(w.channel.id, m.id);
      const seen = recordPresences(w);
      await w.startBridge(puppetsEnv(w));
      // Everyone changes status; a few type; one posts.
      for (const m of members) await setStatus(w, m, "dnd");
      for (const m of members.slice(0, 5)) await typeAs(w, m);
      await w.mm.postAs(members[7].id, w.channel.id, "only I speak");
      await w.alice.waitForMessages(w.room, (m) => m.body === "only I speak", 1, 15_000);
      // The one who spoke shows their status (read by the poller), in one batch request per round.
      await waitFor(() => lastShow(seen, "member7") === "dnd", "member7's puppet showing dnd");
      const occupants = [...seen.keys()].filter((nick) => nick !== "alice" && nick !== "bridge");
      assert.deepEqual(occupants, ["member7"], "no puppet joined for the silent members");
      const polls = w.mm.requestLog.filter((r) =>
        r.method === "POST" && r.path === "/api/v4/users/status/ids"
      );
      assert.ok(polls.length > 0, "statuses were polled");
    });
  },
);

Deno.test(
  "ibr: a channel of many members registers, logs in and joins only the ghost of the one who spoke",
  opts,
  async () => {
    await worlds.run(async (w) => {
      const members = Array.from({ length: 40 }, (_, i) => w.mm.createUser(`ibrmember${i}`));
      for (const m of members) w.mm.addMember(w.channel.id, m.id);
      const seen = recordPresences(w);
      try {
        await w.startBridge({
          BRIDGE_GHOST_MODE: "ibr",
          BRIDGE_SECRET_KEY: "a-long-random-key-for-the-tests-0123456789",
          ...POLL,
        });
        for (const m of members) await setStatus(w, m, "away");
        // Typing is read too (their statuses then are), but is no reason for a session either.
        for (const m of members.slice(10, 15)) await typeAs(w, m);
        await w.mm.postAs(members[3].id, w.channel.id, "only I speak");
        await w.alice.waitForMessages(w.room, (m) => m.body === "only I speak", 1, 15_000);
        await waitFor(() => lastShow(seen, "ibrmember3") === "away", "ibrmember3's ghost showing away");
        // The typists' statuses were read too by now (a round after the one that read ibrmember3's), and left alone.
        const polls = () => w.mm.requestLog.filter((r) => r.path === "/api/v4/users/status/ids").length;
        const after = polls();
        await waitFor(() => polls() >= after + 2, "two more rounds of status reads");
        const joiners = new Set(
          w.prosody.mucJoinRequests().filter((j) => j.to.startsWith(`${w.room}/`)).map((j) =>
            j.from.split("/")[0]
          ),
        );
        assert.deepEqual(
          joiners,
          new Set(["alice@localhost", "bridge@localhost", "mm_ibrmember3@localhost"]),
        );
      } finally {
        // The file's Prosody outlives the world: the ghost accounts (one, unless this failed) must not.
        for (const m of [members[3], ...members.slice(10, 15)]) {
          await w.prosody.unregister(`mm_${m.username}`).catch(() => {});
        }
      }
    });
  },
);

/** Sends alice's presence in the room with `show` (none for plain available). */
function aliceShows(w: World, show?: string): Promise<void> {
  return w.alice.send(xml("presence", { to: `${w.room}/alice` }, ...(show ? [xml("show", {}, show)] : [])));
}

Deno.test(
  "puppets: an XMPP occupant's show becomes their puppet's status, a burst coalesced into one update",
  opts,
  async () => {
    await worlds.run(async (w) => {
      await w.startBridge({ BRIDGE_MM_PUPPETS: "true", MM_ADMIN_TOKEN: w.mm.admin.token });
      await w.alice.sendGroupchat(w.room, "hi from alice");
      const [post] = await postsMatching(w.mm, w.channel.id, (p) => p.message === "hi from alice", 1);
      const puppetId = post.user_id;
      assert.notEqual(puppetId, w.mm.bot.id);
      await waitFor(async () => await statusOf(w, puppetId) === "online", "the puppet online while alice is");

      const puts = () =>
        w.mm.requestLog.filter((r) => r.method === "PUT" && r.path === `/api/v4/users/${puppetId}/status`)
          .length;
      const before = puts();
      for (const show of ["away", "xa", "chat", "away", "dnd", "away", "dnd"]) await aliceShows(w, show);
      await waitFor(
        async () => await statusOf(w, puppetId) === "dnd",
        "the puppet in do not disturb",
        10_000,
      );
      // Give a second update, if there were one, the time to come: one window more.
      await new Promise((r) => setTimeout(r, 2_500));
      assert.equal(puts() - before, 1, "one status update for the burst");

      await aliceShows(w, "xa");
      await waitFor(async () => await statusOf(w, puppetId) === "away", "xa as away (Mattermost has no xa)");
      await w.alice.leaveRoom(w.room);
      await waitFor(async () => await statusOf(w, puppetId) === "offline", "offline once gone from the room");
    });
  },
);

Deno.test(
  "a status before the puppet exists reaches it once made; the bridge's own ghosts' presence never comes back",
  opts,
  async () => {
    await worlds.run(async (w) => {
      const seen = recordPresences(w);
      // Alice is busy before the bridge joins, and so before she has a puppet: it is busy once made (at her first
      // message).
      await aliceShows(w, "dnd");
      await w.startBridge({
        ...puppetsEnv(w),
        BRIDGE_MM_PUPPETS: "true",
        MM_ADMIN_TOKEN: w.mm.admin.token,
      });
      await new Promise((r) => setTimeout(r, 2_500));
      await w.alice.sendGroupchat(w.room, "hi from alice");
      const [post] = await postsMatching(w.mm, w.channel.id, (p) => p.message === "hi from alice", 1);
      await waitFor(async () => await statusOf(w, post.user_id) === "dnd", "alice's new puppet busy");
      await w.mm.postAs(w.bob.id, w.channel.id, "hello");
      await w.alice.waitForMessages(w.room, (m) => m.nick === "bob" && m.body === "hello", 1, 15_000);
      await setStatus(w, w.bob, "away");
      await waitFor(() => lastShow(seen, "bob") === "away", "bob's puppet away");
      assert.ok(seen.get("bob")!.at(-1)!.getChild("x", NS_MUC_USER), "a MUC presence");
      // Bob's puppet's presence is the bridge's own: no Mattermost puppet is made or set for it (a window later).
      await new Promise((r) => setTimeout(r, 2_500));
      const made = w.mm.requestLog.filter((r) => r.method === "POST" && r.path === "/api/v4/users");
      assert.equal(made.length, 1, "one puppet made: alice's");
      const statusSets = w.mm.requestLog.filter((r) => r.method === "PUT" && r.path.endsWith("/status"))
        .map((r) => r.path.split("/")[4]);
      assert.deepEqual(
        new Set(statusSets),
        new Set([post.user_id, w.bob.id]),
        "only alice's puppet and bob himself",
      );
    });
  },
);

worlds.stopAfterAll();

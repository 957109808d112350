/**
 * Avatars and names both ways, against real Prosody (PEP, mod_vcard_legacy) and the Mattermost stand-in: a
 * Mattermost user's profile picture becomes their ghost's XEP-0084 avatar (ibr) or their puppet's vCard and XEP-0153
 * hash (component), read back by a real XMPP client; an XMPP user's avatar becomes their Mattermost puppet's
 * picture, read back with `GET /users/{id}/image`. A new picture replaces it, an unchanged one is not fetched or
 * uploaded again; a new display name or nick follows.
 *
 * One Prosody serves every test of the file; each test has its own room.
 */
import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import { sha1Hex } from "../../src/core/images.ts";
import type { Element } from "../../src/xmpp/session/client.ts";
import { fetchAvatarData, fetchAvatarMetadata } from "../../src/xmpp/xeps/xep0084.ts";
import { buildVcard, fetchVcard, readVcardPhoto } from "../../src/xmpp/xeps/xep0054.ts";
import { readPhotoHash } from "../../src/xmpp/xeps/xep0153.ts";
import { componentEnv, postsMatching, sharedWorlds, waitFor, type World } from "../helpers/harness.ts";
import { solidPng } from "../helpers/png.ts";
import { captureLogs } from "../helpers/log_capture.ts";
import type { XmppUser } from "../helpers/xmpp_user.ts";
import type { TestUser } from "../mm_server/server.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const worlds = sharedWorlds("profiles");
const SECRET_KEY = "a-long-random-key-for-the-tests-0123456789";

/** `user` sets their own Mattermost picture, through the REST API as a client would. */
async function setPicture(w: World, user: TestUser, png: Uint8Array): Promise<void> {
  const form = new FormData();
  form.append("image", new Blob([png.slice()], { type: "image/png" }), "me.png");
  const res = await fetch(`${w.mm.url}/api/v4/users/${user.id}/image`, {
    method: "POST",
    headers: { Authorization: `Bearer ${user.token}` },
    body: form,
  });
  assert.equal(res.status, 200, await res.text());
}

/** `user` changes their Mattermost nickname (their display name). */
async function setNickname(w: World, user: TestUser, nickname: string): Promise<void> {
  const res = await fetch(`${w.mm.url}/api/v4/users/${user.id}/patch`, {
    method: "PUT",
    headers: { Authorization: `Bearer ${user.token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ nickname }),
  });
  assert.equal(res.status, 200, await res.text());
}

/** `user` goes back to Mattermost's default picture. */
async function resetPicture(w: World, user: TestUser): Promise<void> {
  const res = await fetch(`${w.mm.url}/api/v4/users/${user.id}/image`, {
    method: "DELETE",
    headers: { Authorization: `Bearer ${user.token}` },
  });
  assert.equal(res.status, 200, await res.text());
}

/** How often the bridge fetched `user`'s picture from Mattermost. */
function pictureFetches(w: World, user: TestUser): number {
  return w.mm.requestLog.filter((r) => r.method === "GET" && r.path === `/api/v4/users/${user.id}/image`)
    .length;
}

/** Every presence `user` receives from now on. */
function presencesOf(user: XmppUser): Element[] {
  const seen: Element[] = [];
  user.onStanza((s) => {
    if (s.is("presence")) seen.push(s);
  });
  return seen;
}

/** Waits for a presence from `room/nick` naming the picture `hash` (XEP-0153). */
async function presenceWithHash(seen: Element[], room: string, nick: string, hash: string): Promise<void> {
  await waitFor(
    () => seen.some((p) => p.attrs.from === `${room}/${nick}` && readPhotoHash(p) === hash),
    `a presence of ${nick} naming ${hash}`,
    15_000,
  );
}

function readerOf(user: XmppUser) {
  return { iqCaller: { request: (iq: Element, t?: number) => user.iq(iq, t) } };
}

Deno.test(
  "ibr: the ghost publishes its user's picture as XEP-0084, again when it changes and not otherwise; a new display name becomes its nick",
  opts,
  async () => {
    let world: World | undefined;
    try {
      await worlds.run(async (w) => {
        world = w;
        const seen = presencesOf(w.alice);
        const red = await solidPng([220, 20, 20]);
        await setPicture(w, w.bob, red);
        const env = {
          BRIDGE_GHOST_MODE: "ibr",
          BRIDGE_SECRET_KEY: SECRET_KEY,
          BRIDGE_GHOST_NICK_FORMAT: "{displayname}",
        };
        let bridge = await w.startBridge(env);
        await w.mm.postAs(w.bob.id, w.channel.id, "hello with a face");
        await w.alice.waitForMessages(
          w.room,
          (m) => m.nick === "bob" && m.body === "hello with a face",
          1,
          15_000,
        );

        // Alice reads the ghost's avatar from its PEP nodes, and sees its hash in its presence.
        const reader = readerOf(w.alice);
        const info = await fetchAvatarMetadata(reader, "mm_bob@localhost");
        assert.equal(info?.id, sha1Hex(red));
        assert.deepEqual((await fetchAvatarData(reader, "mm_bob@localhost", info!, 1_000_000))?.bytes, red);
        await presenceWithHash(seen, w.room, "bob", sha1Hex(red));
        assert.equal(pictureFetches(w, w.bob), 1);

        // Unchanged: another message fetches nothing, also after a restart (the version shown is in the store).
        await bridge.stop();
        bridge = await w.startBridge(env);
        await w.mm.postAs(w.bob.id, w.channel.id, "same face");
        await w.alice.waitForMessages(w.room, (m) => m.nick === "bob" && m.body === "same face", 1, 15_000);
        assert.equal(pictureFetches(w, w.bob), 1, "an unchanged picture is not fetched again");

        // A new picture: published again at once (user_updated), with the new hash in the ghost's presence.
        const blue = await solidPng([20, 20, 220]);
        await setPicture(w, w.bob, blue);
        await presenceWithHash(seen, w.room, "bob", sha1Hex(blue));
        assert.equal((await fetchAvatarMetadata(reader, "mm_bob@localhost"))?.id, sha1Hex(blue));
        assert.equal(pictureFetches(w, w.bob), 2);

        // A new display name: the ghost takes it as its nick in the room, and speaks under it.
        await setNickname(w, w.bob, "Bobby");
        await waitFor(
          () => seen.some((p) => p.attrs.from === `${w.room}/Bobby` && p.attrs.type === undefined),
          "the ghost's presence as Bobby",
          15_000,
        );
        await w.mm.postAs(w.bob.id, w.channel.id, "call me Bobby");
        await w.alice.waitForMessages(
          w.room,
          (m) => m.nick === "Bobby" && m.body === "call me Bobby",
          1,
          15_000,
        );
        assert.equal(pictureFetches(w, w.bob), 2, "a name change fetches no picture");

        // Back to Mattermost's default: the ghost withdraws its avatar (an empty metadata item, XEP-0084 §4.3).
        await resetPicture(w, w.bob);
        await waitFor(
          async () => (await fetchAvatarMetadata(reader, "mm_bob@localhost")) === null,
          "the ghost's avatar withdrawn",
          15_000,
        );
      });
    } finally {
      if (world) await world.prosody.unregister("mm_bob").catch(() => {});
    }
  },
);

Deno.test(
  "component: the puppet's presence names its user's picture (XEP-0153) and its vCard holds it, also after a change; a new display name becomes its nick",
  opts,
  () =>
    worlds.run(async (w) => {
      const seen = presencesOf(w.alice);
      const green = await solidPng([20, 220, 20]);
      await setPicture(w, w.bob, green);
      await w.startBridge({
        BRIDGE_GHOST_MODE: "component",
        BRIDGE_GHOST_NICK_FORMAT: "{displayname}",
        XMPP_COMPONENT_JID: w.prosody.componentDomain,
        XMPP_COMPONENT_SECRET: w.prosody.componentSecret,
        XMPP_COMPONENT_SERVICE: w.prosody.componentService,
      });
      await w.mm.postAs(w.bob.id, w.channel.id, "hello from a puppet");
      await w.alice.waitForMessages(
        w.room,
        (m) => m.nick === "bob" && m.body === "hello from a puppet",
        1,
        15_000,
      );
      await presenceWithHash(seen, w.room, "bob", sha1Hex(green));

      // A client asks the occupant for its vCard; the room passes the request on to the puppet's JID.
      const reader = readerOf(w.alice);
      const card = await fetchVcard(reader, `${w.room}/bob`);
      assert.deepEqual(card && readVcardPhoto(card, 1_000_000)?.bytes, green);
      assert.equal(card?.getChildText("FN"), "bob");

      const yellow = await solidPng([220, 220, 20]);
      await setPicture(w, w.bob, yellow);
      await presenceWithHash(seen, w.room, "bob", sha1Hex(yellow));
      const again = await fetchVcard(reader, `${w.room}/bob`);
      assert.deepEqual(again && readVcardPhoto(again, 1_000_000)?.bytes, yellow);

      await setNickname(w, w.bob, "Robert");
      await presenceWithHash(seen, w.room, "Robert", sha1Hex(yellow));
      await w.mm.postAs(w.bob.id, w.channel.id, "now Robert");
      await w.alice.waitForMessages(w.room, (m) => m.nick === "Robert" && m.body === "now Robert", 1, 15_000);
      // Back to Mattermost's default: the puppet's presence says it has no picture.
      await resetPicture(w, w.bob);
      await waitFor(
        () => seen.some((p) => p.attrs.from === `${w.room}/Robert` && readPhotoHash(p) === null),
        "a presence of Robert without a picture",
        15_000,
      );
      const renamed = await w.alice.iq(
        xml("iq", { type: "get", to: `${w.room}/Robert` }, xml("vCard", { xmlns: "vcard-temp" })),
      );
      assert.equal(renamed.getChild("vCard")?.getChildText("FN"), "Robert");
    }),
);

Deno.test(
  "component: a picture over 128 KiB is skipped with a log line, the messages go on, and it is not fetched again",
  opts,
  () =>
    worlds.run(async (w) => {
      const seen = presencesOf(w.alice);
      const png = await solidPng([90, 90, 90]);
      // A valid PNG header with 200 KiB after its end: Mattermost keeps it (under MaxFileSize), the bridge must not.
      const huge = new Uint8Array(png.length + 200 * 1024);
      huge.set(png);
      await setPicture(w, w.bob, huge);
      await captureLogs(async (records) => {
        await w.startBridge({
          ...componentEnv(w.prosody),
        });
        await w.mm.postAs(w.bob.id, w.channel.id, "too big a face");
        await w.alice.waitForMessages(
          w.room,
          (m) => m.nick === "bob" && m.body === "too big a face",
          1,
          15_000,
        );
        const bob = seen.find((p) => p.attrs.from === `${w.room}/bob` && p.attrs.type === undefined);
        assert.equal(bob && readPhotoHash(bob), null, "the puppet says it has no picture");
        const skipped = records.filter((r) => r.message.join("").includes("is not shown"));
        assert.equal(skipped.length, 1, "one log line says why");
        assert.match(
          skipped[0].message.map((p) => typeof p === "string" ? p : JSON.stringify(p)).join(""),
          /larger than the 128 KiB limit/,
        );
        assert.ok(skipped[0].level === "info", "not an error");
        await w.mm.postAs(w.bob.id, w.channel.id, "still too big");
        await w.alice.waitForMessages(
          w.room,
          (m) => m.nick === "bob" && m.body === "still too big",
          1,
          15_000,
        );
        assert.equal(pictureFetches(w, w.bob), 1, "the same version is not fetched again");
      });
    }),
);

/** `user` sets a vCard with `png` as its photo (as a client without XEP-0084 does) and tells `room` (XEP-0153). */
async function setVcardPhoto(user: XmppUser, room: string, nick: string, png: Uint8Array): Promise<void> {
  await user.iq(
    xml("iq", { type: "set" }, buildVcard({ fullName: "Alice", photo: { bytes: png, type: "image/png" } })),
  );
  // The server puts the new hash in every presence the client sends (mod_vcard_legacy).
  await user.send(xml("presence", { to: `${room}/${nick}` }));
}

/** The Mattermost user `username` as the admin reads them. */
async function mmUser(
  w: World,
  username: string,
): Promise<{ id: string; nickname: string; last_picture_update: number } | undefined> {
  const res = await fetch(`${w.mm.url}/api/v4/users/username/${username}`, {
    headers: { Authorization: `Bearer ${w.mm.admin.token}` },
  });
  return res.ok ? await res.json() : (await res.body?.cancel(), undefined);
}

/** The profile picture of Mattermost user `userId`, as any client reads it. */
async function mmPicture(w: World, userId: string): Promise<Uint8Array> {
  const res = await fetch(`${w.mm.url}/api/v4/users/${userId}/image`, {
    headers: { Authorization: `Bearer ${w.bob.token}` },
  });
  return new Uint8Array(await res.arrayBuffer());
}

/** How often the bridge set `userId`'s picture (POST), or put it back on the default picture (DELETE). */
function pictureRequests(w: World, userId: string, method: "POST" | "DELETE"): number {
  return w.mm.requestLog.filter((r) => r.method === method && r.path === `/api/v4/users/${userId}/image`)
    .length;
}

/** Mattermost puppets on, with the admin token and a secret key for their tokens. */
function puppetsEnv(w: World): Record<string, string> {
  return { BRIDGE_MM_PUPPETS: "true", MM_ADMIN_TOKEN: w.mm.admin.token, BRIDGE_SECRET_KEY: SECRET_KEY };
}

Deno.test(
  "puppets: an XMPP user's avatar (XEP-0153 hash, vCard through the room) becomes their puppet's picture, again when it changes and not otherwise; a nick change renames the puppet",
  opts,
  () =>
    worlds.run(async (w) => {
      const env = puppetsEnv(w);
      let bridge = await w.startBridge(env);
      const pink = await solidPng([250, 120, 200]);
      await setVcardPhoto(w.alice, w.room, "alice", pink);
      let puppet: Awaited<ReturnType<typeof mmUser>>;
      await waitFor(
        async () => ((puppet = await mmUser(w, "xmpp-alice"))?.last_picture_update ?? 0) > 0,
        "the puppet's picture",
        15_000,
      );
      assert.deepEqual(await mmPicture(w, puppet!.id), pink);
      assert.equal(pictureRequests(w, puppet!.id, "POST"), 1);

      // Messages with the same hash upload nothing, also after a restart (the version shown is in the store).
      await bridge.stop();
      bridge = await w.startBridge(env);
      await w.alice.sendGroupchat(w.room, "same face");
      await postsMatching(w.mm, w.channel.id, (p) => p.message === "same face", 1);
      await w.alice.sendGroupchat(w.room, "still the same");
      await postsMatching(w.mm, w.channel.id, (p) => p.message === "still the same", 1);
      assert.equal(pictureRequests(w, puppet!.id, "POST"), 1, "an unchanged avatar is not uploaded again");

      const teal = await solidPng([20, 180, 180]);
      await setVcardPhoto(w.alice, w.room, "alice", teal);
      await waitFor(() => pictureRequests(w, puppet!.id, "POST") === 2, "the new picture", 15_000);
      await waitFor(
        async () => (await mmPicture(w, puppet!.id)).length === teal.length,
        "the new picture served",
        15_000,
      );
      assert.deepEqual(await mmPicture(w, puppet!.id), teal);

      // A nick change alone (no message) renames the puppet.
      await w.alice.send(xml("presence", { to: `${w.room}/ally` }));
      await waitFor(
        async () => (await mmUser(w, "xmpp-alice"))?.nickname === "ally",
        "the puppet renamed",
        15_000,
      );
      assert.equal(pictureRequests(w, puppet!.id, "POST"), 2, "a nick change uploads no picture");
    }),
);

/** `user` removes their avatar (a vCard without a photo), after which the server says <photo/> in their presence. */
async function clearVcardPhoto(user: XmppUser, room: string, nick: string): Promise<void> {
  await user.iq(xml("iq", { type: "set" }, buildVcard({ fullName: "Alice" })));
  await user.send(xml("presence", { to: `${room}/${nick}` }));
}

Deno.test(
  "puppets: an XMPP user who removes their avatar (vCard: an empty XEP-0153 photo; XEP-0084: an empty metadata item) puts their puppet back on the default picture, once",
  opts,
  () =>
    worlds.run(async (w) => {
      const env = puppetsEnv(w);
      // Alice starts without an avatar (the file's Prosody keeps her vCard from the tests before).
      await clearVcardPhoto(w.alice, w.room, "alice");
      let bridge = await w.startBridge(env);
      // Her presence says she has none (<photo/>): her puppet, on the default picture, is not reset for it.
      await w.alice.sendGroupchat(w.room, "no face yet");
      await postsMatching(w.mm, w.channel.id, (p) => p.message === "no face yet", 1);
      let puppet = await mmUser(w, "xmpp-alice");
      const defaultPicture = await mmPicture(w, puppet!.id);
      const orange = await solidPng([250, 150, 20]);
      await setVcardPhoto(w.alice, w.room, "alice", orange);
      await waitFor(
        async () => ((puppet = await mmUser(w, "xmpp-alice"))?.last_picture_update ?? 0) > 0,
        "the puppet's picture",
        15_000,
      );
      assert.deepEqual(await mmPicture(w, puppet!.id), orange);

      await clearVcardPhoto(w.alice, w.room, "alice");
      await waitFor(
        async () => (await mmUser(w, "xmpp-alice"))?.last_picture_update === 0,
        "the puppet back on the default picture",
        15_000,
      );
      assert.deepEqual(await mmPicture(w, puppet!.id), defaultPicture, "the default picture is served again");
      assert.equal(pictureRequests(w, puppet!.id, "DELETE"), 1);

      // Still none: her messages reset nothing again, also after a restart (the version shown is in the store).
      await bridge.stop();
      bridge = await w.startBridge(env);
      await w.alice.sendGroupchat(w.room, "faceless");
      await postsMatching(w.mm, w.channel.id, (p) => p.message === "faceless", 1);
      assert.equal(pictureRequests(w, puppet!.id, "DELETE"), 1, "no second reset");
      assert.equal(pictureRequests(w, puppet!.id, "POST"), 1);

      // A picture again, then removed the XEP-0084 way (§4.5: an empty metadata item), as most clients do: the
      // server's XEP-0153 photo then names that item, which is no picture's SHA-1.
      const seen = presencesOf(w.alice);
      await setVcardPhoto(w.alice, w.room, "alice", orange);
      await waitFor(() => pictureRequests(w, puppet!.id, "POST") === 2, "the picture again", 15_000);
      await w.alice.iq(
        xml(
          "iq",
          { type: "set" },
          xml(
            "pubsub",
            { xmlns: "http://jabber.org/protocol/pubsub" },
            xml(
              "publish",
              { node: "urn:xmpp:avatar:metadata" },
              xml("item", {}, xml("metadata", { xmlns: "urn:xmpp:avatar:metadata" })),
            ),
          ),
        ),
      );
      await w.alice.send(xml("presence", { to: `${w.room}/alice` }));
      await waitFor(() => pictureRequests(w, puppet!.id, "DELETE") === 2, "the puppet reset again", 15_000)
        .catch(
          (err) => {
            const photos = seen.filter((p) => p.attrs.from === `${w.room}/alice`).map((p) =>
              p.getChild("x", "vcard-temp:x:update")?.toString()
            );
            throw new Error(`${err.message}; alice's presences said: ${photos.join(", ")}`);
          },
        );
      assert.equal((await mmUser(w, "xmpp-alice"))?.last_picture_update, 0);
    }),
);

worlds.stopAfterAll();

/**
 * The avatar XEP modules against a real Prosody (PEP and mod_vcard_legacy): XEP-0084 published by one account and
 * read by another, the same picture as its vCard-temp (XEP-0054) fetched through its occupant JID in a room, and its
 * XEP-0153 hash in its room presence.
 */
import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import { sha1Hex } from "../../src/core/images.ts";
import type { Element } from "../../src/xmpp/session/client.ts";
import { fetchAvatarData, fetchAvatarMetadata, publishAvatar } from "../../src/xmpp/xeps/xep0084.ts";
import { buildVcard, fetchVcard, readVcardPhoto } from "../../src/xmpp/xeps/xep0054.ts";
import { readPhotoHash } from "../../src/xmpp/xeps/xep0153.ts";
import { fileProsody, PASSWORD, waitFor } from "../helpers/harness.ts";
import { solidPng } from "../helpers/png.ts";
import { connectXmppUser } from "../helpers/xmpp_user.ts";
import { quietContext, xmppConnectorOn } from "../helpers/connector_kit.ts";
import { FileUnavailable } from "../../src/core/bridge.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const shared = fileProsody("xmpp avatars");

Deno.test(
  "XEP-0084 published by one account is read by a stranger, as PEP and as its vCard through a room",
  opts,
  async () => {
    const prosody = await shared.get();
    await shared.register("ann", PASSWORD);
    await shared.register("ben", PASSWORD);
    const ann = await connectXmppUser(prosody, "ann", PASSWORD, "pc");
    const ben = await connectXmppUser(prosody, "ben", PASSWORD, "pc");
    try {
      const png = await solidPng([10, 200, 30]);
      const session = { iqCaller: { request: (iq: Element, t?: number) => ann.iq(iq, t) } };
      const id = await publishAvatar(session, { bytes: png, type: "image/png" });
      assert.equal(id, sha1Hex(png));

      // Ben is not in Ann's roster: the nodes must be open to him.
      const reader = { iqCaller: { request: (iq: Element, t?: number) => ben.iq(iq, t) } };
      const info = await fetchAvatarMetadata(reader, "ann@localhost");
      assert.deepEqual(info, { id, type: "image/png", bytes: png.length });
      const image = await fetchAvatarData(reader, "ann@localhost", info!, 1_000_000);
      assert.deepEqual(image?.bytes, png);
      assert.equal(
        await fetchAvatarData(reader, "ann@localhost", info!, 10),
        undefined,
        "over the cap: skipped",
      );

      // In a room, Ann's presence carries the hash and her vCard is had through her occupant JID.
      const presences: Element[] = [];
      ben.onStanza((s) => s.is("presence") && presences.push(s));
      await ben.joinRoom("avatars", "ben");
      await ann.joinRoom("avatars", "ann");
      await waitFor(
        () => presences.some((p) => String(p.attrs.from).endsWith("/ann") && readPhotoHash(p) === id),
        "Ann's presence with her photo hash",
      );
      const vcard = await fetchVcard(reader, "avatars@conference.localhost/ann");
      assert.ok(vcard, "the room passed the vCard request on");
      assert.deepEqual(readVcardPhoto(vcard, 1_000_000)?.bytes, png);
      assert.equal(readVcardPhoto(vcard, 10), undefined, "a photo over the cap is skipped");
    } finally {
      await ann.stop();
      await ben.stop();
    }
  },
);

Deno.test("readPhotoHash and readVcardPhoto: what a presence or vCard does not say, and what it says wrongly", async () => {
  const presence = (x?: Element) => xml("presence", {}, ...(x ? [x] : []));
  const update = (photo?: string) =>
    xml("x", { xmlns: "vcard-temp:x:update" }, ...(photo === undefined ? [] : [xml("photo", {}, photo)]));
  assert.equal(readPhotoHash(presence()), undefined);
  assert.equal(readPhotoHash(presence(update())), undefined, "no <photo>: the client does not know yet");
  assert.equal(readPhotoHash(presence(update(""))), null, "empty: no picture");
  assert.equal(
    readPhotoHash(presence(update("not a hash"))),
    null,
    "no SHA-1 names no picture (what Prosody says of a removed XEP-0084 avatar)",
  );
  assert.equal(readPhotoHash(presence(update("A".repeat(40)))), "a".repeat(40));
  const png = await solidPng([1, 2, 3]);
  const card = buildVcard({ fullName: "Ann", photo: { bytes: png, type: "image/png" } });
  assert.deepEqual(readVcardPhoto(card, 10_000), { bytes: png, type: "image/png" });
  assert.equal(readVcardPhoto(buildVcard({ fullName: "Ann" }), 10_000), undefined);
  const bogus = xml("vCard", { xmlns: "vcard-temp" }, xml("PHOTO", {}, xml("BINVAL", {}, "!!!!")));
  assert.equal(readVcardPhoto(bogus, 10_000), undefined, "no bytes, no type: no picture");
});

Deno.test(
  "the connector's openAvatar: through the occupant JID, else from the account of the real JID (XEP-0084, vCard), else a clear refusal",
  opts,
  async () => {
    const prosody = await shared.get();
    await shared.register("cat", PASSWORD);
    await shared.register("bridge", PASSWORD);
    const cat = await connectXmppUser(prosody, "cat", PASSWORD, "pc");
    const bridge = await xmppConnectorOn(prosody, PASSWORD);
    try {
      await bridge.start(quietContext());
      const png = await solidPng([5, 100, 250]);
      const session = { iqCaller: { request: (iq: Element, t?: number) => cat.iq(iq, t) } };
      const id = await publishAvatar(session, { bytes: png, type: "image/png" });
      const maxBytes = 1_000_000;
      // The occupant JID names no one (Cat left, or changed nick): the picture is had from her account's PEP.
      const sender = {
        network: "xmpp",
        id: "occupant-id-1",
        name: "cat",
        accountId: "cat@localhost",
        avatar: { version: id, source: `nowhere@${prosody.mucDomain}/cat` },
      };
      const stream = await bridge.openAvatar(sender, { maxBytes });
      assert.equal(stream.mimeType, "image/png");
      assert.deepEqual(new Uint8Array(await new Response(stream.body).arrayBuffer()), png);
      // Nobody to ask: unavailable for good, not an error to retry.
      await assert.rejects(
        bridge.openAvatar({ ...sender, accountId: undefined }, { maxBytes }),
        FileUnavailable,
      );
      await assert.rejects(bridge.openAvatar(sender, { maxBytes: 10 }), FileUnavailable, "over the cap");
    } finally {
      await bridge.stop();
      await cat.stop();
    }
  },
);

shared.stopAfterAll();

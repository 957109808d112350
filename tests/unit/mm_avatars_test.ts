/**
 * Mattermost profile pictures read and set by the bridge (src/mattermost/avatars.ts), against the stand-in.
 */
import assert from "node:assert/strict";
import { FileUnavailable } from "../../src/core/bridge.ts";
import { BridgeError } from "../../src/core/errors.ts";
import { MAX_AVATAR_BYTES, readAtMost } from "../../src/core/images.ts";
import { avatarOf, MattermostAvatars, uploadPicture } from "../../src/mattermost/avatars.ts";
import { createClient } from "../../src/mattermost/api.ts";
import { solidPng } from "../helpers/png.ts";
import { startMattermostStandIn } from "../mm_server/server.ts";

Deno.test("avatarOf: a picture of one's own has a version; the generated default has none", () => {
  assert.deepEqual(avatarOf({ id: "u1", last_picture_update: 1700 }), { version: "1700", source: "u1" });
  assert.equal(avatarOf({ id: "u1", last_picture_update: 0 }), undefined);
  assert.equal(avatarOf({ id: "u1" }), undefined);
});

Deno.test("a picture set with uploadPicture is read back by open, and one over the cap is refused", async () => {
  const mm = await startMattermostStandIn();
  try {
    const alice = mm.createUser("alice");
    const avatars = new MattermostAvatars(mm.url, mm.admin.token);
    const png = await solidPng([200, 10, 10]);
    await uploadPicture(createClient(mm.url, alice.token), alice.id, { bytes: png, type: "image/png" });
    const user = await (await fetch(`${mm.url}/api/v4/users/${alice.id}`, {
      headers: { Authorization: `Bearer ${alice.token}` },
    })).json();
    assert.ok(avatarOf(user), "last_picture_update moved");
    const stream = await avatars.open(alice.id, { maxBytes: MAX_AVATAR_BYTES });
    assert.equal(stream.mimeType, "image/png");
    assert.deepEqual(await readAtMost(stream.body, MAX_AVATAR_BYTES), png);
    await assert.rejects(avatars.open(alice.id, { maxBytes: 16 }), FileUnavailable);
  } finally {
    await mm.close();
  }
});

Deno.test("uploadPicture: a refusal says what Mattermost answered and never the token", async () => {
  const mm = await startMattermostStandIn();
  try {
    const alice = mm.createUser("alice");
    const bob = mm.createUser("bob");
    await assert.rejects(
      uploadPicture(createClient(mm.url, bob.token), alice.id, {
        bytes: await solidPng([1, 1, 1]),
        type: "image/png",
      }),
      (err: BridgeError) => {
        assert.match(err.message, /403 api\.context\.permissions\.app_error/);
        assert.equal(err.transient, false);
        assert.ok(!err.message.includes(bob.token));
        return true;
      },
    );
  } finally {
    await mm.close();
  }
});

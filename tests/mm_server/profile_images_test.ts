/**
 * The stand-in's profile pictures, against the rules of api4/user.go `setProfileImage`/`getProfileImage` and
 * app/user.go `SetProfileImageFromFile`.
 */
import assert from "node:assert/strict";
import { solidPng } from "../helpers/png.ts";
import { DEFAULT_PROFILE_PNG, imageConfig } from "./profile_images.ts";
import { apiFetch, connectClient, withStandIn } from "./test_support.ts";
import type { MattermostStandIn } from "./server.ts";

function upload(
  server: MattermostStandIn,
  userId: string,
  token: string,
  image: Uint8Array,
  field = "image",
) {
  const form = new FormData();
  form.append(field, new Blob([image.slice()], { type: "image/png" }), "avatar.png");
  return apiFetch(server, "POST", `/users/${userId}/image`, { token, body: form });
}

async function errorId(res: Response): Promise<string> {
  return (await res.json()).id;
}

Deno.test("imageConfig reads the size of PNG, GIF and JPEG headers and nothing else", async () => {
  assert.deepEqual(imageConfig(await solidPng([1, 2, 3], 5, 7)), { format: "png", width: 5, height: 7 });
  const gif = Uint8Array.from([...new TextEncoder().encode("GIF89a"), 3, 0, 2, 0, 0, 0, 0]);
  assert.deepEqual(imageConfig(gif), { format: "gif", width: 3, height: 2 });
  // SOI, an APP0 segment of 4 bytes, then SOF0 with height 9 and width 11.
  const jpeg = Uint8Array.from([
    0xff,
    0xd8,
    0xff,
    0xe0,
    0,
    4,
    0,
    0,
    0xff,
    0xc0,
    0,
    11,
    8,
    0,
    9,
    0,
    11,
    3,
    0,
    0,
  ]);
  assert.deepEqual(imageConfig(jpeg), { format: "jpeg", width: 11, height: 9 });
  assert.equal(imageConfig(new TextEncoder().encode("not an image at all")), undefined);
});

Deno.test("a user sets their picture: GET serves it with last_picture_update as ETag, user_updated is published", async () => {
  await withStandIn({}, async (server) => {
    const alice = server.createUser("alice");
    const before = await apiFetch(server, "GET", `/users/${alice.id}/image`, { token: alice.token });
    assert.deepEqual(new Uint8Array(await before.arrayBuffer()), DEFAULT_PROFILE_PNG, "the default at first");
    const ws = connectClient(server, server.bot.token);
    try {
      await ws.waitFor((m) => m.event === "hello");
      const red = await solidPng([255, 0, 0]);
      const res = await upload(server, alice.id, alice.token, red);
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { status: "OK" });
      const updated = await ws.waitFor((m) => m.event === "user_updated");
      const version = updated.data.user.last_picture_update;
      assert.ok(version > 0, "last_picture_update moved");
      const got = await apiFetch(server, "GET", `/users/${alice.id}/image`, { token: server.bot.token });
      assert.equal(got.headers.get("ETag"), String(version));
      assert.equal(got.headers.get("Content-Type"), "image/png");
      assert.deepEqual(new Uint8Array(await got.arrayBuffer()), red);
      const cached = await fetch(`${server.url}/api/v4/users/${alice.id}/image`, {
        headers: { Authorization: `Bearer ${alice.token}`, "If-None-Match": String(version) },
      });
      assert.equal(cached.status, 304);
      await cached.body?.cancel();

      // The same picture again changes nothing (SetProfileImageFromFile compares with what is stored).
      assert.equal((await upload(server, alice.id, alice.token, red)).status, 200);
      const me = await (await apiFetch(server, "GET", `/users/${alice.id}`, { token: alice.token })).json();
      assert.equal(me.last_picture_update, version);
      assert.equal(ws.events.filter((m) => m.event === "user_updated").length, 1);

      // Back to the default: last_picture_update 0, user_updated again, the default served.
      const reset = await apiFetch(server, "DELETE", `/users/${alice.id}/image`, { token: alice.token });
      assert.equal(reset.status, 200);
      await reset.body?.cancel();
      await ws.waitFor((m) => m.event === "user_updated" && m.data.user.last_picture_update === 0);
      const back = await apiFetch(server, "GET", `/users/${alice.id}/image`, { token: alice.token });
      assert.deepEqual(new Uint8Array(await back.arrayBuffer()), DEFAULT_PROFILE_PNG);
    } finally {
      ws.close();
    }
  });
});

Deno.test("setting a picture: another user's needs edit_other_users; no image field, not an image and a body over MaxFileSize are refused", async () => {
  await withStandIn({ maxFileSize: 4096 }, async (server) => {
    const alice = server.createUser("alice");
    const bob = server.createUser("bob");
    const png = await solidPng([0, 0, 255]);
    const forbidden = await upload(server, alice.id, bob.token, png);
    assert.equal(forbidden.status, 403);
    assert.equal(await errorId(forbidden), "api.context.permissions.app_error");
    // An admin may (edit_other_users); the bot is no admin here.
    assert.equal((await upload(server, alice.id, server.admin.token, png)).status, 200);
    const noField = await upload(server, alice.id, alice.token, png, "picture");
    assert.equal(noField.status, 400);
    assert.equal(await errorId(noField), "api.user.upload_profile_user.no_file.app_error");
    const notImage = await upload(server, alice.id, alice.token, new TextEncoder().encode("hello"));
    assert.equal(notImage.status, 400);
    assert.equal(await errorId(notImage), "api.user.upload_profile_user.decode_config.app_error");
    // A picture with 5000 bytes after its end: the request is over the limit.
    const padded = new Uint8Array(png.length + 5000);
    padded.set(png);
    const big = await upload(server, alice.id, alice.token, padded);
    assert.equal(big.status, 413);
    assert.equal(await errorId(big), "api.user.upload_profile_user.too_large.app_error");
  });
});

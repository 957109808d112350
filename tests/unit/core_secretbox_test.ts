import assert from "node:assert/strict";
import { randomPassword, SecretBox } from "../../src/core/secretbox.ts";
import { nodeSafe } from "../../src/xmpp/intents/ghosts.ts";

const KEY = "correct horse battery staple 42";

Deno.test("a sealed secret opens with the same key and never holds the plaintext", async () => {
  const box = await SecretBox.create(KEY);
  const stored = await box.seal("hunter2-ghost-password");
  assert.equal(stored.alg, "aes-256-gcm");
  assert.ok(!JSON.stringify(stored).includes("hunter2"));
  assert.equal(await box.open(stored), "hunter2-ghost-password");
  const again = await box.seal("hunter2-ghost-password");
  assert.notEqual(again.data, stored.data, "a fresh IV each time");
});

Deno.test("opening with another key or without a key fails with a message naming BRIDGE_SECRET_KEY", async () => {
  const stored = await (await SecretBox.create(KEY)).seal("secret");
  await assert.rejects(
    () => SecretBox.create("another key entirely").then((b) => b.open(stored)),
    /BRIDGE_SECRET_KEY is not the key/,
  );
  await assert.rejects(() => SecretBox.create().then((b) => b.open(stored)), /BRIDGE_SECRET_KEY is not set/);
});

Deno.test("without a key secrets are stored as they are, marked unencrypted", async () => {
  const box = await SecretBox.create();
  assert.equal(box.encrypting, false);
  const stored = await box.seal("plain");
  assert.deepEqual(stored, { alg: "none", data: "plain" });
  assert.equal(await (await SecretBox.create(KEY)).open(stored), "plain");
});

Deno.test("random passwords carry 32 random bytes, url-safe", () => {
  const a = randomPassword();
  assert.match(a, /^[A-Za-z0-9_-]{43}$/);
  assert.notEqual(a, randomPassword());
});

Deno.test("nodeSafe lowercases and replaces what a JID localpart cannot hold", () => {
  assert.equal(nodeSafe("Alice.Smith"), "alice.smith");
  assert.equal(nodeSafe("a b@c/d:e<f>&'\"g"), "a_b_c_d_e_f____g");
  assert.equal(nodeSafe("ｆｕｌｌ"), "full");
  assert.equal(nodeSafe(""), "_");
});

/** SCRAM-SHA-1 with native key derivation gives exactly RFC 5802's exchange, and refuses absurd iteration counts. */
import assert from "node:assert/strict";
import { MAX_SCRAM_ITERATIONS, NativeScramSha1, saltedPasswordOf } from "../../src/xmpp/session/scram.ts";

// RFC 5802 §5: user "user", password "pencil".
const CLIENT_NONCE = "fyko+d2lbbFgONRv9qkxdawL";
const SERVER_FIRST = "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
const CLIENT_FINAL = "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";

Deno.test("the exchange is RFC 5802's own example, byte for byte", async () => {
  const mech = new NativeScramSha1({ genNonce: () => CLIENT_NONCE });
  const cred = { username: "user", password: "pencil" };
  assert.equal(await mech.response(cred), "n,,n=user,r=" + CLIENT_NONCE);
  mech.challenge(SERVER_FIRST);
  assert.equal(await mech.response(cred), CLIENT_FINAL);
});

Deno.test("SaltedPassword is PBKDF2-HMAC-SHA-1: RFC 6070's test vector", async () => {
  const out = await saltedPasswordOf("password", new TextEncoder().encode("salt"), 4096);
  assert.equal(
    [...out].map((b) => b.toString(16).padStart(2, "0")).join(""),
    "4b007901b765489abead49d926f721d065a429c1",
  );
});

Deno.test("a server asking for more iterations than the cap is refused with a reason, before any work", async () => {
  const mech = new NativeScramSha1({ genNonce: () => CLIENT_NONCE });
  const cred = { username: "user", password: "pencil" };
  await mech.response(cred);
  mech.challenge(`r=${CLIENT_NONCE}x,s=QSXCR+Q6sek8bf92,i=${MAX_SCRAM_ITERATIONS + 1}`);
  await assert.rejects(mech.response(cred), /asked for 2000001 SCRAM iterations/);
});

import assert from "node:assert/strict";
import { startWorld } from "./harness.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

async function doctor(env: Record<string, string>, args: string[] = []) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN, "--doctor", ...args],
    env: { NO_COLOR: "1", ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: new TextDecoder().decode(out.stdout) };
}

Deno.test("--doctor passes against working servers and fails with a wrong password", {
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const w = await startWorld();
  try {
    const good = await doctor(w.env());
    assert.equal(good.code, 0, good.stdout);
    assert.match(
      good.stdout,
      /✓ XMPP login \(\d+ ms\): bridge@localhost via xmpp:\/\/127\.0\.0\.1:\d+, TLS TLSv1\.[23], SASL SCRAM-SHA-1/,
    );
    assert.match(good.stdout, /✓ Mattermost token \(\d+ ms\): .* as xmppbridge \(bot\)/);
    assert.match(good.stdout, /^2 passed, 0 failed$/m);

    const bad = await doctor(w.env({ XMPP_PASSWORD: "not-the-password" }), ["--json"]);
    assert.equal(bad.code, 1);
    const report = JSON.parse(bad.stdout);
    assert.equal(report.ok, false);
    const login = report.steps.find((s: { name: string }) => s.name === "XMPP login");
    assert.equal(login.ok, false);
    assert.match(login.detail, /refused the password/);
    assert.match(login.fix, /XMPP_PASSWORD/);
    assert.ok(!bad.stdout.includes("not-the-password"));
  } finally {
    await w.stop();
  }
});

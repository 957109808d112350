import assert from "node:assert/strict";
import { deadline } from "../src/core/deadline.ts";
import { connectXmppUser } from "./helpers/xmpp_user.ts";
import { PASSWORD, runMain, startWorld, waitFor, type World } from "./harness.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

const GOOD_ENV = {
  MM_URL: "https://chat.example.org",
  MM_TOKEN: "tok3n-value-that-must-not-leak",
  XMPP_JID: "bridge@example.org",
  XMPP_PASSWORD: "pa55word-that-must-not-leak",
};

Deno.test("bad environment exits 2 with one line naming each variable, and leaks no secret", async () => {
  const { code, stderr } = await runMain([], {
    MM_URL: "chat.example.org",
    MM_TOKEN: GOOD_ENV.MM_TOKEN,
    XMPP_JID: "no-at-sign",
    XMPP_PASSWORD_FILE: "/nonexistent/password",
    BRIDGE_MAPPINGS: "team/chan=not a jid",
    BRIDGE_HTTP_ADDR: "nowhere",
  });
  assert.equal(code, 2);
  assert.match(stderr, /MM_URL "chat\.example\.org" is not an http\(s\) URL/);
  assert.match(stderr, /XMPP_JID "no-at-sign" is not a bare JID/);
  assert.match(stderr, /XMPP_PASSWORD_FILE: cannot read \/nonexistent\/password/);
  assert.match(stderr, /BRIDGE_MAPPINGS entry "team\/chan=not a jid" does not parse/);
  assert.match(stderr, /BRIDGE_HTTP_ADDR "nowhere" is not valid/);
  assert.ok(!stderr.includes(GOOD_ENV.MM_TOKEN));
});

Deno.test("--check-config prints the effective config with secrets masked", async () => {
  const { code, stdout } = await runMain(["--check-config"], GOOD_ENV);
  assert.equal(code, 0);
  const config = JSON.parse(stdout);
  assert.equal(config.mattermost.token, "***");
  assert.equal(config.xmpp.password, "***");
  assert.equal(config.xmpp.service, "xmpp://example.org:5222");
  assert.equal(config.xmpp.mucNick, "bridge");
  assert.ok(!stdout.includes(GOOD_ENV.MM_TOKEN) && !stdout.includes(GOOD_ENV.XMPP_PASSWORD));
});

Deno.test("--check-config warns on stderr about an unknown variable, naming the closest known one", async () => {
  const { code, stdout, stderr } = await runMain(["--check-config"], {
    ...GOOD_ENV,
    BRIDGE_GHOST_PREFX: "x_",
    LOG_LEVEL: "warning",
  });
  assert.equal(code, 0, stderr);
  assert.match(
    stderr,
    /^mmxmpp: warning: BRIDGE_GHOST_PREFX is not a variable mmxmpp knows \(ignored\); did you mean BRIDGE_GHOST_PREFIX\?$/m,
  );
  assert.equal(JSON.parse(stdout).log.level, "warn");
});

Deno.test("--help lists every variable and --version prints the version", async () => {
  const help = await runMain(["--help"], {});
  assert.equal(help.code, 0);
  for (
    const v of [
      "MM_URL",
      "MM_TOKEN",
      "XMPP_JID",
      "XMPP_TLS_INSECURE_SKIP_VERIFY",
      "BRIDGE_MM_DISPLAY",
      "LOG_FORMAT",
    ]
  ) {
    assert.match(help.stdout, new RegExp(`^  ${v} `, "m"));
  }
  const version = await runMain(["--version"], {});
  assert.match(version.stdout, /^mmxmpp \d+\.\d+\.\d+/);
  const unknown = await runMain(["--frobnicate"], {});
  assert.equal(unknown.code, 2);
});

Deno.test(
  "the real process bridges, logs JSON without secrets or message text, and exits 0 on SIGTERM within 5 s",
  { sanitizeOps: false, sanitizeResources: false },
  async () => {
    const w = await startWorld();
    const proc = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", MAIN],
      env: {
        ...w.env(),
        LOG_FORMAT: "json",
        LOG_LEVEL: Deno.env.get("DEBUG_LEVEL") ?? "info",
        NO_COLOR: "1",
        // A typo: the bridge starts and says so in its log.
        XMPP_MUC_NIKC: "bridge",
      },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(proc.stderr).text();
    const stdout = new Response(proc.stdout).text();
    try {
      await waitFor(
        async () => {
          const res = await fetch(`http://127.0.0.1:${w.httpPort}/healthz`).catch(() => null);
          const ok = res?.status === 200;
          await res?.body?.cancel();
          return ok;
        },
        "the bridge to report healthy",
        20_000,
      );
      const secretText = "confidential-message-body-4711";
      await w.mm.postAs(w.bob.id, w.channel.id, secretText);
      await w.alice.waitForMessages(w.room, (m) => m.body === `<bob> ${secretText}`, 1, 10_000);

      // The presence the room sends when the bridge's occupant goes; a dropped connection says "Disconnected: …".
      const left = new Promise<string | undefined>((resolve) => {
        const off = w.alice.onStanza((s) => {
          if (s.is("presence") && s.attrs.from === `${w.room}/bridge` && s.attrs.type === "unavailable") {
            off();
            resolve(s.getChildText("status") ?? undefined);
          }
        });
      });
      const t0 = performance.now();
      proc.kill("SIGTERM");
      const status = await proc.status;
      const elapsed = performance.now() - t0;
      assert.equal(status.code, 0);
      assert.ok(elapsed < 5_000, `stopped in ${Math.round(elapsed)} ms`);

      const log = (await stderr) + (await stdout);
      const lines = log.split("\n").filter((l) => l.trim() !== "");
      assert.ok(lines.length > 3);
      for (const line of lines) JSON.parse(line); // every line is structured
      assert.match(log, /Received \\"SIGTERM\\"; shutting down/);
      assert.match(
        log,
        /"level":"WARN".*XMPP_MUC_NIKC is not a variable mmxmpp knows.*did you mean XMPP_MUC_NICK/,
      );
      assert.ok(!log.includes(w.mm.bot.token), "the Mattermost token is never logged");
      assert.ok(!log.includes(PASSWORD), "the XMPP password is never logged");
      assert.ok(!log.includes(secretText), "message text is not logged at info level");
      // It left the room on the way out, cleanly: alice saw the bridge's unavailable presence, with no
      // "Disconnected" status as when a connection drops without closing its session.
      const leftStatus = await deadline(
        left,
        2_000,
        () => new Error("alice never saw the bridge leave the room"),
      );
      assert.equal(leftStatus, undefined, `the bridge left with status ${leftStatus}`);
    } finally {
      try {
        proc.kill("SIGKILL");
      } catch { /* already exited */ }
      await proc.status;
      if (Deno.env.get("DEBUG_LEVEL")) console.error(await stderr);
      await stderr.catch(() => {});
      await stdout.catch(() => {});
      await w.stop();
    }
  },
);

/** Starts `main.ts` as its own process with the world's environment; its output is collected. */
function spawnBridge(w: World) {
  const proc = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN],
    env: { ...w.env(), LOG_FORMAT: "json", NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  return { proc, output };
}

/** The status of `GET /healthz`, or 0 when nothing answers. */
async function healthz(w: World): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${w.httpPort}/healthz`).catch(() => null);
  await res?.body?.cancel();
  return res?.status ?? 0;
}

Deno.test(
  "the real process's /healthz is 503 while the XMPP server is down and 200 again once it is back",
  { sanitizeOps: false, sanitizeResources: false },
  async () => {
    const w = await startWorld();
    const { proc, output } = spawnBridge(w);
    try {
      await waitFor(async () => await healthz(w) === 200, "the bridge to report healthy", 20_000);
      await w.prosody.kill();
      await waitFor(async () => await healthz(w) === 503, "/healthz to report the outage", 10_000);
      const down = await (await fetch(`http://127.0.0.1:${w.httpPort}/healthz`)).json();
      assert.equal(down.ok, false);
      assert.equal(down.bridges.find((b: { network: string }) => b.network === "xmpp")?.connected, false);
      assert.equal(
        down.bridges.find((b: { network: string }) => b.network === "mattermost")?.connected,
        true,
      );

      await w.prosody.restart();
      await waitFor(async () => await healthz(w) === 200, "/healthz to recover", 30_000);
      // Recovered for real: a post reaches the room again.
      const alice = await connectXmppUser(w.prosody, "alice", PASSWORD, "again");
      try {
        await alice.joinRoom(w.room, "alice2");
        await w.mm.postAs(w.bob.id, w.channel.id, "after the outage");
        await alice.waitForMessages(w.room, (m) => m.body === "<bob> after the outage", 1, 15_000);
      } finally {
        await alice.stop();
      }
    } finally {
      try {
        proc.kill("SIGKILL");
      } catch { /* already exited */ }
      await proc.status;
      await output;
      await w.stop();
    }
  },
);

import assert from "node:assert/strict";
import { deadline } from "../../src/core/deadline.ts";
import { connectXmppUser } from "../helpers/xmpp_user.ts";
import { PASSWORD, runMain, startWorld, waitFor } from "../helpers/harness.ts";
import { spawnBridge as spawnMain } from "../helpers/bridge_process.ts";
import { freePort } from "../helpers/ports.ts";
import { startProsody } from "../helpers/prosody.ts";
import { startMattermostStandIn } from "../mm_server/server.ts";
import { selfSignedCert } from "../helpers/tls.ts";

const GOOD_ENV = {
  MM_URL: "https://chat.example.org",
  MM_TOKEN: "tok3n-value-that-must-not-leak",
  XMPP_JID: "bridge@example.org",
  XMPP_PASSWORD: "pa55word-that-must-not-leak",
  // --check-config binds the address for a moment and tries the state file's directory: keep both private.
  BRIDGE_HTTP_ADDR: `127.0.0.1:${freePort()}`,
  BRIDGE_KV_PATH: "/tmp/mmxmpp-cli-test-not-created/state.kv",
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
  assert.match(stderr, /MM_URL "chat\.example\.org" has no scheme: use https:\/\/chat\.example\.org/);
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

Deno.test("a misspelt secret is named next to the 'required' error it causes, without its value", async () => {
  const { XMPP_PASSWORD, ...rest } = GOOD_ENV;
  const { code, stderr } = await runMain(["--check-config"], { ...rest, XMPP_PASSWRD: XMPP_PASSWORD });
  assert.equal(code, 2, stderr);
  assert.match(stderr, /^mmxmpp: configuration error: XMPP_PASSWORD is required/m);
  assert.match(
    stderr,
    /^mmxmpp: warning: XMPP_PASSWRD is not a variable mmxmpp knows .*did you mean XMPP_PASSWORD\?$/m,
  );
  assert.ok(!stderr.includes(XMPP_PASSWORD), "the value was printed");
});

Deno.test("--help lists every variable and --version prints the version", async () => {
  // Independent runs go together: each is a process of its own.
  const [help, version, unknown] = await Promise.all([
    runMain(["--help"], {}),
    runMain(["--version"], {}),
    runMain(["--frobnicate"], {}),
  ]);
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
  assert.match(version.stdout, /^mmxmpp \d+\.\d+\.\d+/);
  assert.equal(unknown.code, 2);
});

Deno.test(
  "the real process bridges, logs JSON without secrets or message text, and exits 0 on SIGTERM within 5 s",
  { sanitizeOps: false, sanitizeResources: false },
  async () => {
    const w = await startWorld();
    const bridge = spawnMain({
      ...w.env(),
      LOG_LEVEL: Deno.env.get("DEBUG_LEVEL") ?? "info",
      // A typo: the bridge starts and says so in its log.
      XMPP_MUC_NIKC: "bridge",
    }, w.httpPort);
    try {
      await bridge.waitForHealth(200);
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
      const code = await bridge.stop();
      const elapsed = performance.now() - t0;
      assert.equal(code, 0);
      assert.ok(elapsed < 5_000, `stopped in ${Math.round(elapsed)} ms`);

      const log = bridge.log();
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
      await bridge.kill();
      if (Deno.env.get("DEBUG_LEVEL")) console.error(bridge.log());
      await w.stop();
    }
  },
);

Deno.test(
  "the real process's /healthz is 503 while the XMPP server is down and 200 again once it is back",
  { sanitizeOps: false, sanitizeResources: false },
  async () => {
    const w = await startWorld();
    const bridge = spawnMain(w.env(), w.httpPort);
    try {
      await bridge.waitForHealth(200);
      await w.prosody.kill();
      await bridge.waitForHealth(503, { timeoutMs: 10_000 });
      // Once a reconnect attempt has failed, the detail says why.
      const port = new URL(w.prosody.service).port;
      await waitFor(
        async () => {
          const body = await (await fetch(`http://127.0.0.1:${w.httpPort}/healthz`)).json();
          const detail = body.bridges.find((b: { network: string }) => b.network === "xmpp")?.detail ?? "";
          return detail.includes(
            `reconnecting: connection refused (127.0.0.1:${port}); is the XMPP server running`,
          );
        },
        "/healthz to name the refused connection",
        15_000,
      );
      const down = await (await fetch(`http://127.0.0.1:${w.httpPort}/healthz`)).json();
      assert.equal(down.ok, false);
      assert.equal(down.bridges.find((b: { network: string }) => b.network === "xmpp")?.connected, false);
      assert.equal(
        down.bridges.find((b: { network: string }) => b.network === "mattermost")?.connected,
        true,
      );

      await w.prosody.restart();
      await bridge.waitForHealth(200, { timeoutMs: 30_000 });
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
      await bridge.kill();
      await w.stop();
    }
  },
);

Deno.test("--doctor and its flags are accepted in any order; --check-config with --doctor is named as a conflict", async (t) => {
  // Nothing listens at either address: the doctor runs its steps and reports the failures (exit 1).
  const env = {
    ...GOOD_ENV,
    MM_URL: `http://127.0.0.1:${freePort()}`,
    XMPP_SERVICE: `xmpp://127.0.0.1:${freePort()}`,
  };
  await t.step("doctor flags before, after and around --doctor run the same doctor", async () => {
    const orders = [
      ["--doctor", "--json", "--skip-mattermost"],
      ["--json", "--doctor", "--skip-mattermost"],
      ["--json", "--skip-mattermost", "--doctor"],
    ];
    const reports = [];
    for (const args of orders) {
      const run = await runMain(args, env);
      assert.equal(run.code, 1, `${args.join(" ")}: ${run.stderr}`);
      reports.push(
        JSON.parse(run.stdout).steps.map((s: { id: string; status: string }) => `${s.id} ${s.status}`),
      );
    }
    assert.ok(reports[0].length > 0);
    assert.ok(!reports[0].some((s: string) => s.startsWith("mattermost.")), "--skip-mattermost was applied");
    assert.deepEqual(reports[1], reports[0]);
    assert.deepEqual(reports[2], reports[0]);
  });
  await t.step("--help with --doctor, in either order, is the doctor's help", async () => {
    for (const args of [["--help", "--doctor"], ["--doctor", "--help"]]) {
      const run = await runMain(args, {});
      assert.equal(run.code, 0);
      assert.match(run.stdout, /^Usage: deno task start --doctor \[flags\]/);
    }
  });
  await t.step("--check-config and --doctor together are refused, naming both", async () => {
    for (const args of [["--check-config", "--doctor"], ["--doctor", "--json", "--check-config"]]) {
      const run = await runMain(args, env);
      assert.equal(run.code, 2, args.join(" "));
      assert.match(
        run.stderr,
        /^mmxmpp: --check-config and --doctor are separate checks: run `deno task start --check-config` \(the settings only\) or `deno task start --doctor`/m,
      );
      assert.equal(run.stdout, "");
    }
  });
  await t.step("a doctor flag without --doctor is named as one", async () => {
    const run = await runMain(["--check-config", "--json"], env);
    assert.equal(run.code, 2);
    assert.match(
      run.stderr,
      /^mmxmpp: --json: flags of --doctor, which is not given: run `deno task start --doctor --json`/m,
    );
    const two = await runMain(["--server", "xmpp.example.org:5222", "--verbose"], env);
    assert.match(
      two.stderr,
      /^mmxmpp: --server xmpp\.example\.org:5222 --verbose: flags of --doctor, which is not given: run `deno task start --doctor --server xmpp\.example\.org:5222 --verbose`/m,
    );
  });
  await t.step("hints name the command that was run (deno task start from a checkout)", async () => {
    // Independent runs go together: each is a process of its own.
    const runs = [
      ["--frobnicate"],
      ["--frobnicate", "--doctor"],
      ["--help"],
      ["mappings", "--help"],
      ["mappings", "--frobnicate"],
      [],
    ];
    const [unknown, doctorUnknown, help, mappings, mappingsUnknown, bad] = await Promise.all(
      runs.map((args) => runMain(args, {})),
    );
    assert.match(unknown.stderr, /Unknown option '--frobnicate'\. Try deno task start --help\.$/m);
    assert.equal(doctorUnknown.code, 2);
    assert.match(doctorUnknown.stderr, /Try deno task start --doctor --help\.$/m);
    assert.match(help.stdout, /^Usage: deno task start \[--help\]/m);
    assert.match(mappings.stdout, /^Usage: deno task start mappings list/m);
    assert.match(mappingsUnknown.stderr, /Try deno task start mappings --help\.$/m);
    assert.match(bad.stderr, /^mmxmpp: see deno task start --help for every variable$/m);
  });
});

Deno.test("MM_URL with a query, a fragment or credentials is told exactly that; /api/v4 is cut with a warning", async () => {
  // Independent runs go together: each is a process of its own.
  const [query, fragment, credentials, api] = await Promise.all([
    runMain(["--check-config"], {
      ...GOOD_ENV,
      MM_URL: "https://chat.example.org/?access_token=querytoken123",
    }),
    runMain(["--check-config"], { ...GOOD_ENV, MM_URL: "https://chat.example.org/#/town" }),
    runMain(["--check-config"], { ...GOOD_ENV, MM_URL: "https://admin:hunter2-password@chat.example.org" }),
    runMain(["--check-config"], { ...GOOD_ENV, MM_URL: "https://chat.example.org/api/v4/" }),
  ]);
  assert.equal(query.code, 2);
  assert.match(
    query.stderr,
    /^mmxmpp: configuration error: MM_URL must not carry a query string or fragment: remove \?… \(use https:\/\/chat\.example\.org\)$/m,
  );
  assert.ok(!query.stderr.includes("querytoken123"), "the query is not repeated: it may hold a token");

  assert.match(fragment.stderr, /MM_URL must not carry a query string or fragment: remove #…/);

  assert.equal(credentials.code, 2);
  assert.match(
    credentials.stderr,
    /^mmxmpp: configuration error: MM_URL must not contain credentials \(user:password@\): put the token in MM_TOKEN$/m,
  );
  assert.ok(!credentials.stderr.includes("hunter2"));

  assert.equal(api.code, 0, api.stderr);
  assert.equal(JSON.parse(api.stdout).mattermost.url, "https://chat.example.org");
  assert.match(
    api.stderr,
    /^mmxmpp: warning: MM_URL "https:\/\/chat\.example\.org\/api\/v4\/" ends in \/api\/v4: using https:\/\/chat\.example\.org; set MM_URL=https:\/\/chat\.example\.org/m,
  );
});

Deno.test("--check-config checks that BRIDGE_KV_PATH can be written and BRIDGE_HTTP_ADDR bound, naming each", async () => {
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (busy.addr as Deno.NetAddr).port;
  try {
    // Independent runs go together: each is a process of its own. /sys takes no new files, not even root's.
    const [both, readOnly, dir, other] = await Promise.all([
      runMain(["--check-config"], {
        ...GOOD_ENV,
        BRIDGE_KV_PATH: "/etc/passwd/state.kv",
        BRIDGE_HTTP_ADDR: `127.0.0.1:${port}`,
      }),
      runMain(["--check-config"], { ...GOOD_ENV, BRIDGE_KV_PATH: "/sys/mmxmpp/state.kv" }),
      runMain(["--check-config"], { ...GOOD_ENV, BRIDGE_KV_PATH: "/tmp" }),
      runMain(["--check-config"], { ...GOOD_ENV, BRIDGE_HTTP_ADDR: "192.0.2.1:8786" }),
    ]);
    assert.equal(both.code, 2);
    assert.equal(both.stdout, "", "no config is printed when a check failed");
    assert.match(
      both.stderr,
      /^mmxmpp: configuration error: BRIDGE_KV_PATH \/etc\/passwd\/state\.kv: \/etc\/passwd is not a directory$/m,
    );
    assert.match(
      both.stderr,
      new RegExp(
        `^mmxmpp: configuration error: BRIDGE_HTTP_ADDR 127\\.0\\.0\\.1:${port}: the port is already in use by ` +
          `process ${Deno.pid} \\(deno\\); stop it or set BRIDGE_HTTP_ADDR to a free port$`,
        "m",
      ),
    );
    assert.equal(readOnly.code, 2);
    assert.match(readOnly.stderr, /BRIDGE_KV_PATH \/sys\/mmxmpp\/state\.kv: cannot create files in \/sys \(/);
    assert.match(
      dir.stderr,
      /BRIDGE_KV_PATH \/tmp is a directory: name a file in it, e\.g\. \/tmp\/mmxmpp\.kv/,
    );
    assert.match(
      other.stderr,
      /BRIDGE_HTTP_ADDR 192\.0\.2\.1:8786: 192\.0\.2\.1 is not an address of this machine/,
    );
  } finally {
    busy.close();
  }
});

/** Runs main.ts to its exit (SIGKILL after `timeoutMs`: a start that is retried instead of failing fails here). */
async function startToExit(env: Record<string, string>, timeoutMs = 20_000) {
  const httpPort = freePort();
  const bridge = spawnMain({ BRIDGE_HTTP_ADDR: `127.0.0.1:${httpPort}`, ...env }, httpPort);
  const timer = setTimeout(() => bridge.stop(), timeoutMs);
  try {
    return { code: await bridge.exited, log: bridge.log() };
  } finally {
    clearTimeout(timer);
  }
}

Deno.test(
  "a start that cannot work exits 2 with the cause, the fix and `deno task start --doctor`",
  opts(),
  async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "mmxmpp-cli-" });
    const closed = `xmpp://127.0.0.1:${freePort()}`;
    const base = { ...GOOD_ENV, BRIDGE_KV_PATH: `${dir}/state.kv`, XMPP_SERVICE: closed };
    const doctorHint = /Run `deno task start --doctor` for a full check/;
    try {
      await t.step("Mattermost behind a self-signed certificate", async () => {
        const { cert, key } = await selfSignedCert(dir);
        const tls = Deno.serve(
          { hostname: "127.0.0.1", port: 0, cert, key, onListen: () => {} },
          () => new Response(),
        );
        try {
          const run = await startToExit({ ...base, MM_URL: `https://127.0.0.1:${tls.addr.port}` });
          assert.equal(run.code, 2, run.log);
          assert.match(
            run.log,
            /"level":"FATAL".*Could not start: .{0,2}cannot log in to https:.*certificate of 127\.0\.0\.1:\d+ not accepted: unknown issuer.*DENO_CERT/,
          );
          assert.match(run.log, doctorHint);
        } finally {
          await tls.shutdown();
        }
      });
      await t.step("MM_URL that is not Mattermost's base URL", async () => {
        const mm = await startMattermostStandIn();
        try {
          const run = await startToExit({ ...base, MM_URL: `${mm.url}/myteam`, MM_TOKEN: mm.bot.token });
          assert.equal(run.code, 2, run.log);
          assert.match(
            run.log,
            /Could not start: .{0,2}cannot log in to .*\/myteam: it answered 404 .*is MM_URL Mattermost's base URL/,
          );
          assert.match(run.log, doctorHint);
        } finally {
          await mm.close();
        }
      });
      await t.step("Prosody's self-signed certificate without XMPP_CA_FILE", async () => {
        const prosody = await startProsody();
        try {
          const run = await startToExit({
            ...base,
            MM_URL: `http://127.0.0.1:${freePort()}`,
            XMPP_JID: "bridge@localhost",
            XMPP_SERVICE: prosody.service,
          });
          assert.equal(run.code, 2, run.log);
          assert.match(
            run.log,
            /Could not start: .{0,2}cannot connect to XMPP .*self-signed certificate.*set XMPP_CA_FILE to the server's CA certificate \(or XMPP_TLS_INSECURE_SKIP_VERIFY=true for a test\)/,
          );
          assert.match(run.log, doctorHint);
        } finally {
          await prosody.stop();
        }
      });
      await t.step("BRIDGE_HTTP_ADDR in use", async () => {
        const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
        const port = (busy.addr as Deno.NetAddr).port;
        try {
          const run = await startToExit({ ...base, BRIDGE_HTTP_ADDR: `127.0.0.1:${port}` });
          assert.equal(run.code, 2, run.log);
          assert.match(
            run.log,
            new RegExp(
              `Could not start: .{0,2}BRIDGE_HTTP_ADDR 127\\.0\\.0\\.1:${port}: the port is already in use by ` +
                `process ${Deno.pid} \\(deno\\)`,
            ),
          );
          assert.match(run.log, doctorHint);
        } finally {
          busy.close();
        }
      });
      await t.step("BRIDGE_KV_PATH where no file can be created", async () => {
        const run = await startToExit({ ...base, BRIDGE_KV_PATH: "/sys/mmxmpp/state.kv" });
        assert.equal(run.code, 2, run.log);
        assert.match(
          run.log,
          /Could not start: .{0,2}BRIDGE_KV_PATH \/sys\/mmxmpp\/state\.kv: cannot create files in \/sys/,
        );
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "while servers are unreachable at start, the retry log and /healthz name the root cause",
  opts(),
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "mmxmpp-cli-" });
    const mmPort = freePort();
    const httpPort = freePort();
    const bridge = spawnMain({
      ...GOOD_ENV,
      MM_URL: `http://127.0.0.1:${mmPort}`,
      XMPP_SERVICE: "xmpp://chat.example.invalid:5222",
      BRIDGE_KV_PATH: `${dir}/state.kv`,
      BRIDGE_HTTP_ADDR: `127.0.0.1:${httpPort}`,
    }, httpPort);
    try {
      await bridge.waitForLog(
        new RegExp(
          `Cannot connect to .*mattermost.* yet .*connection refused \\(127\\.0\\.0\\.1:${mmPort}\\); is Mattermost running`,
        ),
      );
      await bridge.waitForLog(
        /Cannot connect to .*xmpp.* yet .*DNS: no such host chat\.example\.invalid; check the host name in XMPP_SERVICE/,
      );
      const health = await bridge.healthz();
      assert.equal(health?.status, 503);
      const detail = (network: string) => health!.body.bridges.find((b) => b.network === network)!.detail;
      assert.match(
        detail("mattermost"),
        new RegExp(`not connected yet .*connection refused \\(127\\.0\\.0\\.1:${mmPort}\\)`),
      );
      assert.match(detail("xmpp"), /not connected yet .*DNS: no such host chat\.example\.invalid/);
      assert.ok(!bridge.log().includes("fetch failed"));
    } finally {
      assert.equal(await bridge.stop(), 0);
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("the doctor's Mattermost steps name the root cause of an unreachable MM_URL and callback", async () => {
  const mmPort = freePort();
  const callbackPort = freePort();
  const run = await runMain(["--doctor"], {
    ...GOOD_ENV,
    MM_URL: `http://127.0.0.1:${mmPort}`,
    MM_TEAM: "myteam",
    BRIDGE_PUBLIC_URL: `http://127.0.0.1:${callbackPort}`,
    XMPP_SERVICE: `xmpp://127.0.0.1:${freePort()}`,
  });
  assert.equal(run.code, 1);
  assert.match(
    run.stdout,
    new RegExp(
      `^✗ Mattermost reachable \\(\\d+ ms\\): cannot reach http://127\\.0\\.0\\.1:${mmPort}: connection refused ` +
        `\\(127\\.0\\.0\\.1:${mmPort}\\)\\n  → what to do: is Mattermost running, and are the host and port in MM_URL right\\?$`,
      "m",
    ),
  );
  assert.match(
    run.stdout,
    new RegExp(
      `^✗ Mattermost command callback \\(\\d+ ms\\): nothing answers at http://127\\.0\\.0\\.1:${callbackPort}/` +
        `mattermost/command from this host: connection refused \\(127\\.0\\.0\\.1:${callbackPort}\\)$`,
      "m",
    ),
  );
  assert.ok(!run.stdout.includes("fetch failed"));
});

function opts() {
  return { sanitizeOps: false, sanitizeResources: false };
}

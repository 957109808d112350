import assert from "node:assert/strict";
import { type MainRun, PASSWORD, runMain, startWorld } from "./harness.ts";
import { startProsody } from "./helpers/prosody.ts";
import { startMattermostStandIn } from "./mm_server/server.ts";
import { runDoctor } from "../doctor.ts";
import { doctorSettings, parseDoctorFlags } from "../src/doctor/options.ts";
import type { Element } from "@xmpp/xml";

/** Runs `mmxmpp --doctor` as its own process, with exactly `env`. */
function doctor(env: Record<string, string>, args: string[] = []): Promise<MainRun> {
  return runMain(["--doctor", ...args], env);
}

/** The mark (✓ ✗ –) of the step called `name`, or undefined when it is not in the output. */
function mark(stdout: string, name: string): string | undefined {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`^([✓✗–]) ${escaped}[ :(]`, "m").exec(stdout)?.[1];
}

/** The step's line and, for a failure, its what-to-do line. */
function lines(stdout: string, name: string): string {
  const all = stdout.split("\n");
  const i = all.findIndex((l) => l.slice(2).startsWith(name));
  return all.slice(i, i + 2).join("\n");
}

const XMPP_STEPS = [
  "XMPP TCP connect",
  "XMPP TLS",
  "XMPP SASL",
  "XMPP bind",
  "XMPP disco#info",
  "XMPP XEP-0077 live",
  "XMPP MUC round trip",
  "XMPP direct message",
  "XMPP room exists",
];
const MATTERMOST_STEPS = [
  "Mattermost reachable",
  "Mattermost token",
  "Mattermost websocket",
  "Mattermost mapped channels",
  "Mattermost posting overrides",
  "Mattermost slash command permission",
  "Mattermost command callback",
];

interface JsonStep {
  id: string;
  name: string;
  status: "pass" | "fail" | "skip";
  ms: number;
  detail: string;
  fix?: string;
}

Deno.test("--doctor against real Prosody and the Mattermost stand-in", {
  sanitizeOps: false,
  sanitizeResources: false,
}, async (t) => {
  const [w, closed] = await Promise.all([
    // Team admin: the bot may manage slash commands, so every Mattermost step passes.
    startWorld({ mattermost: { botTeamRole: "admin" } }),
    startProsody({ allowRegistration: false }),
  ]);
  await closed.register("bridge", PASSWORD);
  // Serves the command callback and makes the bot a member of the mapped channel, as a deployment would.
  await w.startBridge();
  const secrets = [PASSWORD, w.mm.bot.token];
  const runs: MainRun[] = [];
  const dms: string[] = [];
  const stopWatching = w.alice.onStanza((s: Element) => {
    if (s.is("message") && s.attrs.type === "chat") dms.push(String(s.getChildText("body")));
  });
  // A TLS server presenting the test Prosody's certificate, for a JID whose domain it does not name.
  const wrongHost = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: Deno.readTextFileSync(w.prosody.caFile),
    key: Deno.readTextFileSync(`${w.prosody.dir}/localhost.key`),
  });
  const accepting = (async () => {
    for await (const conn of wrongHost) conn.handshake().catch(() => {}).finally(() => conn.close());
  })().catch(() => {});
  const noMattermost = Object.fromEntries(
    Object.entries(w.env({ XMPP_CA_FILE: "" })).filter(([k]) =>
      !k.startsWith("MM_") && k !== "BRIDGE_PUBLIC_URL"
    ),
  );

  try {
    // Independent runs go in parallel to keep the test short.
    const [full, badPassword, insecure, hostMismatch, registrationOff] = await Promise.all([
      doctor(w.env(), [
        "--test-muc",
        "--test-xep0077",
        "--test-dm",
        "alice@localhost",
        "--test-room-exists",
        w.room,
        "--verbose",
      ]),
      doctor(w.env(), ["--json", "--password", "not-the-password", "--test-muc"]),
      doctor(noMattermost, ["--skip-mattermost", "--insecure-skip-verify"]),
      doctor({
        ...noMattermost,
        XMPP_JID: "bridge@example.org",
        XMPP_SERVICE: `xmpps://127.0.0.1:${wrongHost.addr.port}`,
        XMPP_CA_FILE: w.prosody.caFile,
      }, ["--skip-mattermost"]),
      doctor({ ...w.env({ XMPP_SERVICE: closed.service, XMPP_CA_FILE: closed.caFile }) }, [
        "--skip-mattermost",
        "--test-xep0077",
      ]),
    ]);
    runs.push(full, badPassword, insecure, hostMismatch, registrationOff);

    await t.step("a full run with every XMPP test passes every step and exits 0", () => {
      assert.equal(full.code, 0, full.stdout + full.stderr);
      for (const name of [...XMPP_STEPS, ...MATTERMOST_STEPS]) {
        assert.equal(mark(full.stdout, name), "✓", `${name}:\n${full.stdout}`);
      }
      assert.match(full.stdout, /^✓ XMPP TCP connect \(\d+ ms\): 127\.0\.0\.1:\d+/m);
      assert.match(
        full.stdout,
        /^✓ XMPP TLS \(\d+ ms\): TLSv1\.[23] via STARTTLS; certificate CN=localhost for DNS:localhost.*issuer itself \(self-signed\), expires \d{4}-\d\d-\d\d \(in \d+ days\); trusted \(system CAs \+ XMPP_CA_FILE\)/m,
      );
      assert.match(full.stdout, /^✓ XMPP SASL \(\d+ ms\): SCRAM-SHA-1 accepted for bridge@localhost$/m);
      assert.match(
        full.stdout,
        /^✓ XMPP bind \(\d+ ms\): bound bridge@localhost\/mattermost-bridge-doctor-[0-9a-f]{8}$/m,
      );
      assert.match(
        full.stdout,
        /^✓ XMPP disco#info \(\d+ ms\): \d+ features on localhost .*registration of new accounts open/m,
      );
      assert.match(full.stdout, /^ {4}jabber:iq:register$/m, "--verbose lists the features");
      assert.match(
        full.stdout,
        /^✓ XMPP XEP-0077 live \(\d+ ms\): registered mmxmpp-doctor-\w+@localhost, logged in, joined hall@conference\.localhost .*cancelled the registration; login now fails \(not-authorized\)$/m,
      );
      assert.match(
        full.stdout,
        /^✓ XMPP MUC round trip \(\d+ ms\): joined hall@conference\.localhost as bridge-doctor in \d+ ms; own message reflected after \d+ ms$/m,
      );
      assert.match(
        full.stdout,
        /^✓ XMPP direct message \(\d+ ms\): sent to alice@localhost; no error within 2 s$/m,
      );
      assert.match(
        full.stdout,
        /^✓ XMPP room exists \(\d+ ms\): hall@conference\.localhost exists; the random room mmxmpp-doctor-\w+@conference\.localhost does not/m,
      );
      assert.match(
        full.stdout,
        /^✓ Mattermost reachable \(\d+ ms\): http:\/\/127\.0\.0\.1:\d+ answers, server version 10\.11\.0$/m,
      );
      assert.match(full.stdout, /^✓ Mattermost token \(\d+ ms\): .* as xmppbridge \(bot\), roles /m);
      assert.match(full.stdout, /^✓ Mattermost websocket \(\d+ ms\): hello after \d+ ms/m);
      assert.match(
        full.stdout,
        /^✓ Mattermost mapped channels \(\d+ ms\): 1 channel\(s\) readable, xmppbridge a member of each: testteam\/town-hall$/m,
      );
      assert.match(
        full.stdout,
        /^✓ Mattermost posting overrides \(\d+ ms\): EnablePostUsernameOverride is on/m,
      );
      assert.match(
        full.stdout,
        /^✓ Mattermost slash command permission \(\d+ ms\): xmppbridge may manage slash commands in testteam; \/xmppbridge calls testteam: http:\/\/127\.0\.0\.1:\d+\/mattermost\/command$/m,
      );
      assert.match(
        full.stdout,
        /^✓ Mattermost command callback \(\d+ ms\): http:\/\/127\.0\.0\.1:\d+\/mattermost\/command answers HTTP 401/m,
      );
      assert.match(full.stdout, /^16 passed, 0 failed, 0 skipped$/m);
      // The messages really went out: alice saw the test messages in the room and the direct message.
      assert.ok(
        w.alice.messages.some((m) => m.nick === "bridge-doctor" && /MUC round-trip test/.test(m.body ?? "")),
      );
      assert.ok(
        w.alice.messages.some((m) => /^mmxmpp-doctor-/.test(m.nick) && /XEP-0077/.test(m.body ?? "")),
      );
      assert.ok(dms.some((b) => /direct message test/.test(b)), `alice got no DM: ${dms}`);
    });

    await t.step(
      "a wrong password fails SASL with what to do, skips what needs it, and exits 1 (--json)",
      () => {
        assert.equal(badPassword.code, 1, badPassword.stdout + badPassword.stderr);
        const report = JSON.parse(badPassword.stdout) as {
          ok: boolean;
          passed: number;
          failed: number;
          skipped: number;
          steps: JsonStep[];
        };
        assert.equal(report.ok, false);
        const byId = new Map(report.steps.map((s) => [s.id, s]));
        for (const s of report.steps) {
          assert.deepEqual(Object.keys(s).filter((k) => k !== "fix" && k !== "items"), [
            "id",
            "name",
            "status",
            "ms",
            "detail",
          ]);
          assert.equal(typeof s.ms, "number");
        }
        assert.equal(byId.get("xmpp.tcp")?.status, "pass");
        assert.equal(byId.get("xmpp.tls")?.status, "pass");
        const sasl = byId.get("xmpp.sasl")!;
        assert.equal(sasl.status, "fail");
        assert.match(sasl.detail, /refused the password for bridge@localhost \(not-authorized\)/);
        assert.match(sasl.fix!, /XMPP_PASSWORD/);
        for (const id of ["xmpp.bind", "xmpp.disco", "xmpp.muc"]) {
          assert.equal(byId.get(id)?.status, "skip", id);
          assert.match(byId.get(id)!.detail, /^needs XMPP (SASL|bind|disco#info)/);
        }
        assert.match(byId.get("xmpp.dm")!.detail, /not requested/);
        for (const id of ["mattermost.reachable", "mattermost.token", "mattermost.websocket"]) {
          assert.equal(byId.get(id)?.status, "pass", id);
        }
        assert.deepEqual(
          [report.passed, report.failed, report.skipped],
          ["pass", "fail", "skip"].map((st) => report.steps.filter((s) => s.status === st).length),
        );
        assert.equal(report.failed, 1);
        assert.match(badPassword.stderr, /warning: --password is visible to other users/);
        assert.ok(!(badPassword.stdout + badPassword.stderr).includes("not-the-password"));
      },
    );

    await t.step(
      "--skip-mattermost needs no MM_* settings; --insecure-skip-verify passes TLS with a warning",
      () => {
        assert.equal(insecure.code, 0, insecure.stdout + insecure.stderr);
        assert.doesNotMatch(insecure.stdout, /Mattermost (reachable|token)/);
        assert.match(insecure.stdout, /Mattermost skipped/);
        assert.match(insecure.stdout, /^✓ XMPP TLS .*NOT checked: it is self-signed/m);
        assert.equal(mark(insecure.stdout, "XMPP disco#info"), "✓");
        assert.equal(mark(insecure.stdout, "XMPP MUC round trip"), "–");
        assert.match(insecure.stdout, /^5 passed, 0 failed, 4 skipped$/m);
        assert.match(insecure.stderr, /XMPP_TLS_INSECURE_SKIP_VERIFY=true/);
      },
    );

    await t.step("a certificate for another host is named as such", () => {
      assert.equal(hostMismatch.code, 1, hostMismatch.stdout);
      assert.match(
        lines(hostMismatch.stdout, "XMPP TLS"),
        /^✗ XMPP TLS \(\d+ ms\): the certificate is not accepted: it is for DNS:localhost, .*, not example\.org\n {2}→ what to do: the certificate must name XMPP_JID's domain example\.org/,
      );
      assert.equal(mark(hostMismatch.stdout, "XMPP SASL"), "–");
    });

    await t.step("registration turned off fails the XEP-0077 step with what to change", () => {
      assert.equal(registrationOff.code, 1, registrationOff.stdout);
      assert.match(registrationOff.stdout, /registration of new accounts closed/);
      assert.match(
        lines(registrationOff.stdout, "XMPP XEP-0077 live"),
        /^✗ XMPP XEP-0077 live \(\d+ ms\): .*does not allow in-band registration.*\n {2}→ what to do: .*allow_registration = true/,
      );
      assert.match(registrationOff.stdout, /^5 passed, 1 failed, 3 skipped$/m);
    });

    await t.step(
      "a self-signed certificate, a channel the bot is not in, and overrides off each say what to do",
      async () => {
        const secret = w.mm.createChannel("secret", { type: "P" });
        w.mm.setConfig({ enablePostUsernameOverride: false });
        const run = await doctor(
          w.env({
            XMPP_CA_FILE: "",
            BRIDGE_MAPPINGS:
              `${w.mm.team.name}/${w.channel.name}=${w.room},${w.mm.team.name}/${secret.name}=x@conference.localhost`,
          }),
        );
        runs.push(run);
        assert.equal(run.code, 1, run.stdout);
        assert.match(
          lines(run.stdout, "XMPP TLS"),
          /^✗ XMPP TLS \(\d+ ms\): the certificate is not accepted: it is self-signed \(CN=localhost\) and not trusted.*\n {2}→ what to do: trust it with XMPP_CA_FILE=.*--insecure-skip-verify/,
        );
        assert.match(run.stdout, /^– XMPP SASL: skipped, needs XMPP TLS, which failed$/m);
        assert.match(
          lines(run.stdout, "Mattermost mapped channels"),
          /^✗ .*testteam\/secret: not found, or not visible to xmppbridge.*\n {2}→ what to do: .*\/invite @xmppbridge/,
        );
        assert.match(
          lines(run.stdout, "Mattermost posting overrides"),
          /EnablePostUsernameOverride is off.*\n {2}→ what to do: System Console → .*BRIDGE_MM_DISPLAY=prefix/,
        );
        assert.match(run.stdout, /^\d+ passed, 3 failed, \d+ skipped$/m);
      },
    );

    await t.step("no secret is ever printed", () => {
      for (const run of runs) {
        for (const secret of secrets) {
          assert.ok(!(run.stdout + run.stderr).includes(secret), "a secret leaked");
        }
      }
    });
  } finally {
    stopWatching();
    wrongHost.close();
    await accepting;
    await w.stop();
    await closed.stop();
  }
});

Deno.test("--doctor: a bot with default roles or outside the team gets its own step saying what to do", {
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const [w, outside] = await Promise.all([startWorld(), startMattermostStandIn({ botTeamRole: "none" })]);
  try {
    // The bridge itself starts with default roles (it only warns); the doctor runs next to it.
    await w.startBridge();
    const env = w.env({ XMPP_CA_FILE: "" });
    const [noPermission, byHand, notInTeam] = await Promise.all([
      doctor(env, ["--insecure-skip-verify"]),
      doctor({ ...env, MM_COMMAND_TOKEN: "byhandtoken0123456789abcde" }, ["--insecure-skip-verify"]),
      doctor({ ...env, MM_URL: outside.url, MM_TOKEN: outside.bot.token, BRIDGE_MAPPINGS: "" }, [
        "--insecure-skip-verify",
      ]),
    ]);
    assert.equal(noPermission.code, 1, noPermission.stdout);
    assert.match(
      lines(noPermission.stdout, "Mattermost slash command permission"),
      /^✗ Mattermost slash command permission \(\d+ ms\): xmppbridge lacks the permission manage_slash_commands in team testteam \(HTTP 403\): the bridge cannot register \/xmppbridge.*\n {2}→ what to do: either give the bot the permission manage_slash_commands in team testteam \(e\.g\. make it a team admin.*or create \/xmppbridge by hand .*set MM_COMMAND_TOKEN/,
    );
    // The override check asks with the bot's session, so it sees the setting (anonymous callers do not).
    assert.match(
      noPermission.stdout,
      /^✓ Mattermost posting overrides \(\d+ ms\): EnablePostUsernameOverride is on/m,
    );
    assert.match(noPermission.stdout, /^\d+ passed, 1 failed, \d+ skipped$/m);

    assert.equal(byHand.code, 0, byHand.stdout);
    assert.match(
      byHand.stdout,
      /^✓ Mattermost slash command permission \(\d+ ms\): xmppbridge lacks the permission manage_slash_commands in team testteam \(HTTP 403\); the command made by hand is accepted with MM_COMMAND_TOKEN/m,
    );

    assert.equal(notInTeam.code, 1, notInTeam.stdout);
    assert.match(
      lines(notInTeam.stdout, "Mattermost slash command permission"),
      /^✗ .*: team testteam \(MM_TEAM\) does not exist or xmppbridge is not a member \(HTTP 403\)\n {2}→ what to do: add xmppbridge to team testteam/,
    );
    for (const run of [noPermission, byHand, notInTeam]) {
      for (const secret of [PASSWORD, w.mm.bot.token, outside.bot.token, "byhandtoken0123456789abcde"]) {
        assert.ok(!(run.stdout + run.stderr).includes(secret), "a secret leaked");
      }
    }
  } finally {
    await w.stop();
    await outside.close();
  }
});

Deno.test("--doctor refuses bad flags with exit 2, and --help exits 0", async () => {
  const out: string[] = [];
  const io = { out: (l: string) => out.push(l), err: (l: string) => out.push(l) };
  const env = {
    XMPP_JID: "bridge@example.org",
    XMPP_PASSWORD: "pw-not-printed",
    MM_URL: "http://x.test",
    MM_TOKEN: "t",
  };
  assert.equal(await runDoctor(["--bogus"], env, io), 2);
  assert.match(out.join("\n"), /Unknown option '--bogus'/);
  assert.equal(await runDoctor(["--test-muc"], env, io), 2);
  assert.match(out.join("\n"), /--test-muc needs a room: give --test-room/);
  assert.equal(await runDoctor(["--test-dm", "not a jid"], env, io), 2);
  assert.equal(await runDoctor(["--test-room-exists", "nope"], env, io), 2);
  assert.equal(
    await runDoctor([], { XMPP_JID: "bridge@example.org", XMPP_PASSWORD: "pw-not-printed" }, io),
    2,
  );
  assert.match(out.join("\n"), /MM_URL is required/);
  out.length = 0;
  assert.equal(await runDoctor(["--help"], env, io), 0);
  assert.match(out.join("\n"), /--test-xep0077/);
  assert.ok(!out.join("\n").includes("pw-not-printed"));
});

Deno.test("doctor flags override the environment; --skip-mattermost needs no MM_* settings", () => {
  const env = {
    XMPP_JID: "bridge@example.org",
    XMPP_PASSWORD: "pw",
    BRIDGE_MAPPINGS: "c1/town=lobby@muc.example.org",
  };
  const res = doctorSettings(
    parseDoctorFlags([
      "--skip-mattermost",
      "--server",
      "chat.example.org:5223",
      "--username",
      "doc",
      "--resource",
      "probe",
      "--test-muc",
    ]),
    env,
  );
  assert.ok(res.ok, JSON.stringify(res));
  assert.equal(res.settings.config.xmpp.service, "xmpp://chat.example.org:5223");
  assert.equal(res.settings.config.xmpp.jid, "doc@example.org");
  assert.equal(res.settings.resource, "probe");
  assert.equal(
    res.settings.testRoom,
    "lobby@muc.example.org",
    "the first mapped room is the default test room",
  );
  const direct = doctorSettings(
    parseDoctorFlags(["--skip-mattermost", "--server", "xmpps://tls.example.org"]),
    env,
  );
  assert.ok(direct.ok);
  assert.equal(direct.settings.config.xmpp.service, "xmpps://tls.example.org:5223");
  assert.match(direct.settings.resource, /^mattermost-bridge-doctor-[0-9a-f]{8}$/);
});

import assert from "node:assert/strict";
import { type MainRun, PASSWORD, runMain, startWorld } from "../helpers/harness.ts";
import { startProsody } from "../helpers/prosody.ts";
import { startMattermostStandIn } from "../mm_server/server.ts";
import { freePort } from "../helpers/ports.ts";
import { runDoctor } from "../../doctor.ts";
import { doctorSettings, parseDoctorFlags } from "../../src/doctor/options.ts";
import type { Element } from "@xmpp/xml";
import { xml } from "@xmpp/client-core";

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
  "XMPP component handshake",
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
    const batch = await Promise.all([
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
      // No mappings: the throwaway room goes to the MUC service the server lists.
      doctor(w.env({ BRIDGE_MAPPINGS: "" }), ["--skip-mattermost", "--test-muc"]),
      // Direct TLS asked of Prosody's STARTTLS port, and STARTTLS asked of a direct-TLS port.
      doctor(w.env(), ["--skip-mattermost", "--server", `xmpps://127.0.0.1:${w.prosody.c2sPort}`]),
      doctor(w.env(), ["--skip-mattermost", "--server", `127.0.0.1:${wrongHost.addr.port}`]),
    ]);
    runs.push(...batch);
    const [
      full,
      badPassword,
      insecure,
      hostMismatch,
      registrationOff,
      noMappings,
      xmppsOnStarttls,
      plainOnTls,
    ] = batch;

    await t.step("a full run with every XMPP test passes every step and exits 0", () => {
      assert.equal(full.code, 0, full.stdout + full.stderr);
      for (const name of [...XMPP_STEPS.filter((n) => !/component/.test(n)), ...MATTERMOST_STEPS]) {
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
        /^✓ XMPP XEP-0077 live \(\d+ ms\): registered mmxmpp-doctor-\w+@localhost, logged in, joined the throwaway room mmxmpp-doctor-[0-9a-f]{8}@conference\.localhost \(destroyed after the test\), message reflected after \d+ ms; cancelled the registration; login now fails \(not-authorized\)$/m,
      );
      assert.match(
        full.stdout,
        /^✓ XMPP MUC round trip \(\d+ ms\): joined the throwaway room mmxmpp-doctor-[0-9a-f]{8}@conference\.localhost \(destroyed after the test\) as bridge-doctor in \d+ ms; own message reflected after \d+ ms$/m,
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
      assert.match(
        full.stdout,
        /^– XMPP component handshake: skipped, BRIDGE_GHOST_MODE is relay, not component/m,
      );
      assert.match(full.stdout, /^– Mattermost puppets: skipped, BRIDGE_MM_PUPPETS is off/m);
      assert.match(full.stdout, /^16 passed, 0 failed, 2 skipped$/m);
      assert.ok(dms.some((b) => /direct message test/.test(b)), `alice got no DM: ${dms}`);
    });

    await t.step(
      "the live probes never post into the mapped room, and their throwaway rooms are gone",
      async () => {
        // alice sits in the mapped room, which the running bridge relays to Mattermost: neither side saw a probe.
        assert.deepEqual(
          w.alice.messages.filter((m) => /please ignore/.test(m.body ?? "")).map((m) =>
            `${m.room} <${m.nick}>`
          ),
          [],
        );
        assert.deepEqual(w.mm.posts(w.channel.id).filter((p) => /please ignore/.test(p.message)), []);
        const used = [
          ...full.stdout.matchAll(/throwaway room (mmxmpp-doctor-[0-9a-f]{8}@conference\.localhost)/g),
        ]
          .map((m) => m[1]);
        assert.equal(new Set(used).size, 2, "the MUC and XEP-0077 steps each used their own room");
        for (const room of used) {
          const answer = await w.alice.iq(
            xml(
              "iq",
              { type: "get", to: room },
              xml("query", { xmlns: "http://jabber.org/protocol/disco#info" }),
            ),
          ).then(() => "exists", (err) => err.condition);
          assert.equal(answer, "item-not-found", `${room} was not destroyed`);
        }
      },
    );

    await t.step(
      "an explicit --test-room is used as given; a mapped one gets a warning and is named",
      async () => {
        // After the step above, which checks that the mapped room got nothing from the other runs.
        const mappedRoom = await doctor(w.env(), ["--skip-mattermost", "--test-muc", "--test-room", w.room]);
        runs.push(mappedRoom);
        assert.equal(mappedRoom.code, 0, mappedRoom.stdout + mappedRoom.stderr);
        assert.match(
          mappedRoom.stderr,
          /warning: --test-room hall@conference\.localhost is mapped in BRIDGE_MAPPINGS: the probe messages will be bridged to Mattermost/,
        );
        assert.match(
          mappedRoom.stdout,
          /^✓ XMPP MUC round trip \(\d+ ms\): joined hall@conference\.localhost \(--test-room, mapped: the message was bridged to Mattermost\) as bridge-doctor/m,
        );
        assert.ok(
          w.alice.messages.some((m) =>
            m.nick === "bridge-doctor" && /MUC round-trip test/.test(m.body ?? "")
          ),
          "the explicit room got the probe",
        );
      },
    );

    await t.step("without mappings the throwaway room goes to the MUC service found by disco#items", () => {
      assert.equal(noMappings.code, 0, noMappings.stdout + noMappings.stderr);
      assert.match(
        noMappings.stdout,
        /^✓ XMPP MUC round trip \(\d+ ms\): joined the throwaway room mmxmpp-doctor-[0-9a-f]{8}@conference\.localhost \(destroyed after the test\)/m,
      );
    });

    await t.step("a port that speaks the other TLS scheme says which scheme to use", () => {
      const c2s = `127.0.0.1:${w.prosody.c2sPort}`;
      assert.equal(xmppsOnStarttls.code, 1, xmppsOnStarttls.stdout);
      assert.match(
        lines(xmppsOnStarttls.stdout, "XMPP TLS"),
        new RegExp(
          `^✗ XMPP TLS \\(\\d+ ms\\): ${c2s} answered the TLS handshake in plain XMPP .*\n {2}→ what to do: ` +
            `this port speaks STARTTLS: use xmpp://${c2s} in XMPP_SERVICE \\(or --server ${c2s}\\)`,
        ),
      );
      const tlsPort = `127.0.0.1:${wrongHost.addr.port}`;
      assert.equal(plainOnTls.code, 1, plainOnTls.stdout);
      assert.match(
        lines(plainOnTls.stdout, "XMPP TLS"),
        new RegExp(
          `^✗ XMPP TLS \\(\\d+ ms\\): ${tlsPort} answered the XMPP stream header with TLS.*\n {2}→ what to do: ` +
            `this port speaks direct TLS: use xmpps://${tlsPort} in XMPP_SERVICE \\(or --server xmpps://${tlsPort}\\)`,
        ),
      );
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
        assert.match(insecure.stdout, /^5 passed, 0 failed, 5 skipped$/m);
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
      assert.match(registrationOff.stdout, /^5 passed, 1 failed, 4 skipped$/m);
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
    // Channels the bot is not in: a public one it can join by itself, and a private one.
    w.mm.createChannel("lobby");
    w.mm.createChannel("backroom", { type: "P" });
    const team = w.mm.team.name;
    const [noPermission, byHand, notInTeam, joinable, invite] = await Promise.all([
      doctor(env, ["--insecure-skip-verify"]),
      doctor({ ...env, MM_COMMAND_TOKEN: "byhandtoken0123456789abcde" }, ["--insecure-skip-verify"]),
      doctor({ ...env, MM_URL: outside.url, MM_TOKEN: outside.bot.token, BRIDGE_MAPPINGS: "" }, [
        "--insecure-skip-verify",
      ]),
      doctor({
        ...env,
        BRIDGE_MAPPINGS: `${team}/${w.channel.name}=${w.room},${team}/lobby=lobby@conference.localhost`,
      }, [
        "--insecure-skip-verify",
      ]),
      doctor({ ...env, BRIDGE_MAPPINGS: `${team}/backroom=back@conference.localhost` }, [
        "--insecure-skip-verify",
      ]),
    ]);
    assert.match(
      joinable.stdout,
      /^✓ Mattermost mapped channels \(\d+ ms\): 2 channel\(s\) readable, xmppbridge a member of testteam\/town-hall; note: xmppbridge is not in testteam\/lobby yet, a public channel of its team: the bridge will join it at start$/m,
    );
    assert.match(
      lines(invite.stdout, "Mattermost mapped channels"),
      /^✗ Mattermost mapped channels \(\d+ ms\): testteam\/backroom: not found, or not visible to xmppbridge \(HTTP 404\)\n {2}→ what to do: .*\/invite @xmppbridge/,
    );
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
  // --server says which scheme is which, with the usual ports.
  assert.match(
    out.join("\n"),
    /--server HOST:PORT\|URL .*HOST:PORT or xmpp:\/\/HOST:PORT means\n.*STARTTLS \(usually port 5222\); xmpps:\/\/HOST:PORT means\n.*direct TLS .*\(usually port 5223\)/,
  );
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
  assert.equal(res.settings.testRoom, undefined, "no mapped room is a default test room");
  assert.equal(
    res.settings.mucService,
    "muc.example.org",
    "throwaway rooms go to the first mapping's service",
  );
  assert.deepEqual(res.settings.warnings, []);
  const mapped = doctorSettings(
    parseDoctorFlags(["--skip-mattermost", "--test-muc", "--test-room", "Lobby@muc.example.org"]),
    env,
  );
  assert.ok(mapped.ok);
  assert.equal(mapped.settings.testRoom, "lobby@muc.example.org");
  assert.equal(mapped.settings.testRoomMapped, true);
  assert.match(
    mapped.settings.warnings.join("\n"),
    /is mapped in BRIDGE_MAPPINGS: the probe messages will be bridged/,
  );
  const direct = doctorSettings(
    parseDoctorFlags(["--skip-mattermost", "--server", "xmpps://tls.example.org"]),
    env,
  );
  assert.ok(direct.ok);
  assert.equal(direct.settings.config.xmpp.service, "xmpps://tls.example.org:5223");
  assert.match(direct.settings.resource, /^mattermost-bridge-doctor-[0-9a-f]{8}$/);
});

Deno.test("--doctor: the component handshake passes, or names the secret, the domain or the port", {
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const prosody = await startProsody({ componentSecret: "c0mp-s3cret-right" });
  try {
    await prosody.register("bridge", PASSWORD);
    const env = {
      XMPP_JID: "bridge@localhost",
      XMPP_PASSWORD: PASSWORD,
      XMPP_SERVICE: prosody.service,
      XMPP_CA_FILE: prosody.caFile,
      BRIDGE_GHOST_MODE: "component",
      XMPP_COMPONENT_JID: prosody.componentDomain,
      XMPP_COMPONENT_SECRET: prosody.componentSecret,
      XMPP_COMPONENT_SERVICE: prosody.componentService,
    };
    const wrongSecret = { ...env, XMPP_COMPONENT_SECRET: "wr0ng-s3cret-given" };
    const closedPort = `xmpp://127.0.0.1:${freePort()}`;
    const [right, wrong, wrongJson, unknown, refused, relay] = await Promise.all([
      doctor(env, ["--skip-mattermost"]),
      doctor(wrongSecret, ["--skip-mattermost"]),
      doctor(wrongSecret, ["--skip-mattermost", "--json"]),
      doctor({ ...env, XMPP_COMPONENT_JID: "nobody.localhost" }, ["--skip-mattermost"]),
      doctor({ ...env, XMPP_COMPONENT_SERVICE: closedPort }, ["--skip-mattermost"]),
      doctor({ ...env, BRIDGE_GHOST_MODE: "relay" }, ["--skip-mattermost"]),
    ]);
    const step = "XMPP component handshake";
    assert.equal(right.code, 0, right.stdout + right.stderr);
    assert.match(
      right.stdout,
      /^✓ XMPP component handshake \(\d+ ms\): bridge\.localhost accepted by xmpp:\/\/127\.0\.0\.1:\d+ \(XEP-0114 handshake with XMPP_COMPONENT_SECRET\)$/m,
    );

    assert.equal(wrong.code, 1, wrong.stdout);
    assert.match(
      lines(wrong.stdout, step),
      /^✗ XMPP component handshake \(\d+ ms\): the server refused the handshake for bridge\.localhost \(not-authorized\)\n {2}→ what to do: XMPP_COMPONENT_SECRET does not match the server's component_secret for bridge\.localhost/,
    );
    const report = JSON.parse(wrongJson.stdout) as { failed: number; steps: JsonStep[] };
    const json = report.steps.find((s) => s.id === "xmpp.component")!;
    assert.equal(json.status, "fail");
    assert.match(json.detail, /refused the handshake for bridge\.localhost \(not-authorized\)/);
    assert.match(
      json.fix!,
      /^XMPP_COMPONENT_SECRET does not match the server's component_secret for bridge\.localhost/,
    );
    assert.equal(report.failed, 1, "only the component step failed");

    assert.equal(unknown.code, 1, unknown.stdout);
    assert.match(
      lines(unknown.stdout, step),
      /^✗ XMPP component handshake \(\d+ ms\): the server answered host-unknown: it has no component nobody\.localhost on this port\n {2}→ what to do: the server knows no component named nobody\.localhost: check XMPP_COMPONENT_JID/,
    );

    assert.equal(refused.code, 1, refused.stdout);
    assert.match(
      lines(refused.stdout, step),
      new RegExp(
        `^✗ XMPP component handshake \\(\\d+ ms\\): 127\\.0\\.0\\.1:\\d+ refused the connection\\n {2}→ what to do: ` +
          `check XMPP_COMPONENT_SERVICE \\(${closedPort}\\): is the component port \\(5347\\) open on loopback\\?`,
      ),
    );

    assert.equal(relay.code, 0, relay.stdout);
    assert.match(
      relay.stdout,
      /^– XMPP component handshake: skipped, BRIDGE_GHOST_MODE is relay, not component/m,
    );
    for (const run of [right, wrong, wrongJson, unknown, refused, relay]) {
      for (const secret of [PASSWORD, "c0mp-s3cret-right", "wr0ng-s3cret-given"]) {
        assert.ok(
          !(run.stdout + run.stderr).includes(secret),
          `a secret leaked:\n${run.stdout}${run.stderr}`,
        );
      }
    }
  } finally {
    await prosody.stop();
  }
});

Deno.test("--doctor against a Prosody with a direct-TLS port and restricted room creation says what to do", {
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const prosody = await startProsody();
  try {
    // Give this Prosody a direct-TLS c2s port too (the setup script leaves c2s_direct_tls_ports empty), and
    // let only admins create rooms.
    const directPort = freePort();
    const config = `${prosody.dir}/prosody.cfg.lua`;
    const text = await Deno.readTextFile(config);
    const restrict = "\trestrict_room_creation = false\n";
    assert.ok(
      text.includes("c2s_direct_tls_ports = {}") && text.includes(restrict),
      "the setup script's config changed",
    );
    await Deno.writeTextFile(
      config,
      text.replace("c2s_direct_tls_ports = {}", `c2s_direct_tls_ports = { ${directPort} }`)
        .replace(restrict, "\trestrict_room_creation = true\n"),
    );
    await prosody.restart();
    await prosody.register("bridge", PASSWORD);
    const env = {
      XMPP_JID: "bridge@localhost",
      XMPP_PASSWORD: PASSWORD,
      XMPP_CA_FILE: prosody.caFile,
      XMPP_SERVICE: prosody.service,
    };
    const starttls = `127.0.0.1:${prosody.c2sPort}`;
    const direct = `127.0.0.1:${directPort}`;
    const [rightDirect, xmppsOnStarttls, plainOnDirect, noRooms] = await Promise.all([
      doctor(env, ["--skip-mattermost", "--server", `xmpps://${direct}`]),
      doctor(env, ["--skip-mattermost", "--server", `xmpps://${starttls}`]),
      doctor(env, ["--skip-mattermost", "--server", direct]),
      doctor({ ...env, BRIDGE_MAPPINGS: "town=hall@conference.localhost", MM_TEAM: "t" }, [
        "--skip-mattermost",
        "--test-muc",
      ]),
    ]);
    assert.equal(noRooms.code, 1, noRooms.stdout + noRooms.stderr);
    assert.match(
      lines(noRooms.stdout, "XMPP MUC round trip"),
      /^✗ XMPP MUC round trip \(\d+ ms\): cannot join the throwaway room mmxmpp-doctor-[0-9a-f]{8}@conference\.localhost: not-allowed\n {2}→ what to do: conference\.localhost does not let this account create rooms: allow it \(Prosody: restrict_room_creation\), or give --test-room an existing room/,
    );
    assert.equal(rightDirect.code, 0, rightDirect.stdout + rightDirect.stderr);
    assert.match(rightDirect.stdout, /^✓ XMPP TLS \(\d+ ms\): TLSv1\.[23] via direct TLS;/m);
    assert.equal(mark(rightDirect.stdout, "XMPP SASL"), "✓");

    assert.equal(xmppsOnStarttls.code, 1, xmppsOnStarttls.stdout);
    assert.match(
      lines(xmppsOnStarttls.stdout, "XMPP TLS"),
      new RegExp(
        `^✗ XMPP TLS \\(\\d+ ms\\): ${starttls} answered the TLS handshake in plain XMPP .*\\n {2}→ what to do: ` +
          `this port speaks STARTTLS: use xmpp://${starttls} in XMPP_SERVICE \\(or --server ${starttls}\\)`,
      ),
    );
    // Prosody resets a plain stream header on its direct-TLS port without a byte; a second connection shows TLS.
    assert.equal(plainOnDirect.code, 1, plainOnDirect.stdout);
    assert.match(
      lines(plainOnDirect.stdout, "XMPP TLS"),
      new RegExp(
        `^✗ XMPP TLS \\(\\d+ ms\\): ${direct} closed the connection on the XMPP stream header without a word, ` +
          `and completes a TLS handshake: it is a direct-TLS port.*\\n {2}→ what to do: ` +
          `this port speaks direct TLS: use xmpps://${direct} in XMPP_SERVICE \\(or --server xmpps://${direct}\\)`,
      ),
    );
  } finally {
    await prosody.stop();
  }
});

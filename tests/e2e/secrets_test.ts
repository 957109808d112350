/**
 * Every secret the settings schema knows, set to a marker value (directly, then through its `_FILE`), must appear
 * nowhere: not in `--check-config`, `--help`, configuration errors, the doctor's text or `--json` report, nor in
 * the bridge's own logs at LOG_LEVEL=debug while it bridges a message, runs a slash command and stops. The real
 * processes run against a real Prosody and the Mattermost stand-in, with the secrets in use (the XMPP password
 * logs in, the component secret connects the component, the key encrypts ghost passwords, the command token is
 * checked).
 */
import assert from "node:assert/strict";
import { type MainRun, runMain, startWorld, type World } from "../helpers/harness.ts";
import { spawnBridge } from "../helpers/bridge_process.ts";
import { loadConfig, secretsOf } from "../../src/config.ts";
import { settingList } from "../../src/settings.ts";
import { masker } from "../../src/doctor/report.ts";

/**
 * The variables to mark: those the schema flags secret, and any whose name says it is one, so that a variable
 * that lost its flag is still marked here and its marker shows up in the output.
 */
const SECRET_VARS = settingList()
  .filter((s) => s.secret || /TOKEN|PASSW|SECRET|KEY/.test(s.name))
  .map((s) => s.name);

const TAG = crypto.randomUUID().slice(0, 8);

/** A distinctive value for `name`: its core is unique to this run; the tail has characters JSON and URLs escape. */
function marker(name: string): string {
  return `${core(name)}&=%+/"\\`;
}

function core(name: string): string {
  return `Mk${TAG}${name.replaceAll("_", "")}`;
}

/** Every way `value` could be printed: as is, JSON-escaped, URL-encoded, and (for our markers) its core. */
function spellings(value: string): string[] {
  const forms = [value, JSON.stringify(value).slice(1, -1), encodeURIComponent(value)];
  const ours = SECRET_VARS.find((name) => value.startsWith(core(name)));
  return ours ? [...forms, core(ours)] : forms;
}

function assertNoSecret(what: string, text: string, secrets: Record<string, string>): void {
  for (const [name, value] of Object.entries(secrets)) {
    for (const spelling of spellings(value)) {
      assert.ok(!text.includes(spelling), `${name} leaked into ${what}: …${around(text, spelling)}…`);
    }
  }
}

function around(text: string, needle: string): string {
  const i = text.indexOf(needle);
  return text.slice(Math.max(0, i - 80), i + needle.length + 20);
}

interface Forms {
  /** The bridge's environment. */
  env: Record<string, string>;
  /** The secret values it holds, by variable. */
  secrets: Record<string, string>;
}

/**
 * The bridge's environment with every secret marked, given directly (`direct`) or in files (`file`). The XMPP
 * password, the component secret and the Mattermost token are the ones the world's servers accept.
 */
async function markedEnv(
  w: World,
  dir: string,
  accepted: Record<string, string>,
  form: "direct" | "file",
  mode: "ibr" | "component",
): Promise<Forms> {
  const secrets = Object.fromEntries(SECRET_VARS.map((name) => [name, accepted[name] ?? marker(name)]));
  const env: Record<string, string> = w.env({
    XMPP_JID: "marked@localhost",
    BRIDGE_GHOST_MODE: mode,
    XMPP_COMPONENT_JID: w.prosody.componentDomain,
    XMPP_COMPONENT_SERVICE: w.prosody.componentService,
    LOG_LEVEL: "debug",
    LOG_FORMAT: "json",
  });
  for (const [name, value] of Object.entries(secrets)) {
    if (form === "direct") env[name] = value;
    else {
      delete env[name];
      const path = `${dir}/${name.toLowerCase()}`;
      await Deno.writeTextFile(path, `${value}\n`);
      env[`${name}_FILE`] = path;
    }
  }
  return { env, secrets };
}

/**
 * Asserts that every marked secret is really read as a secret (so that "not printed" means something); the
 * steps show them in use. Checked after the output, so that a secret that lost its flag shows as a leak first.
 */
function assertAllRead(env: Record<string, string>, secrets: Record<string, string>): void {
  const loaded = loadConfig(env);
  assert.ok(loaded.ok, !loaded.ok ? loaded.errors.join("\n") : "");
  for (const [name, value] of Object.entries(secrets)) {
    assert.ok(secretsOf(loaded.config).includes(value), `${name} is read as a secret`);
  }
}

/** Runs the bridge as its own process with `env` while `during` runs; returns everything it printed. */
async function runBridge(
  w: World,
  env: Record<string, string>,
  during: () => Promise<void>,
): Promise<string> {
  const bridge = spawnBridge(env, w.httpPort);
  try {
    await bridge.waitForHealth(200, { timeoutMs: 30_000 });
    await during();
    assert.equal(await bridge.stop(), 0);
  } finally {
    await bridge.kill();
  }
  return bridge.log();
}

Deno.test("no secret of the schema is ever printed, given directly or in a _FILE", {
  sanitizeOps: false,
  sanitizeResources: false,
}, async (t) => {
  const componentSecret = marker("XMPP_COMPONENT_SECRET");
  // Team admin, so that the bridge can register the command whose token is one of the secrets.
  const w = await startWorld({ prosody: { componentSecret }, mattermost: { botTeamRole: "admin" } });
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-secrets-" });
  // Secrets the servers must accept for the bridge to run; every other one is a marker.
  const accepted: Record<string, string> = {
    MM_TOKEN: w.mm.bot.token, // the stand-in issues the bot's token
    XMPP_PASSWORD: marker("XMPP_PASSWORD"),
    XMPP_COMPONENT_SECRET: componentSecret,
  };
  await w.prosody.register("marked", accepted.XMPP_PASSWORD);
  w.mm.addMember(w.channel.id, w.mm.admin.id);
  try {
    for (const form of ["direct", "file"] as const) {
      await t.step(`${form}: --check-config, --help and a configuration error`, async () => {
        const { env, secrets } = await markedEnv(w, `${dir}`, accepted, form, "component");
        const check = await runMain(["--check-config"], env);
        assert.equal(check.code, 0, check.stderr);
        assertNoSecret("--check-config", check.stdout + check.stderr, secrets);
        const shown = JSON.parse(check.stdout);
        assert.equal(shown.ghosts.secretKey, "***");
        assert.equal(shown.ghosts.component.secret, "***");
        assert.equal(shown.mattermost.commandToken, "***");

        const help = await runMain(["--help"], env);
        assert.equal(help.code, 0);
        assertNoSecret("--help", help.stdout + help.stderr, secrets);

        const bad = await runMain([], { ...env, BRIDGE_HTTP_ADDR: "nowhere", XMPP_JID: "not-a-jid" });
        assert.equal(bad.code, 2);
        assert.match(bad.stderr, /BRIDGE_HTTP_ADDR "nowhere" is not valid/);
        assertNoSecret("configuration errors", bad.stdout + bad.stderr, secrets);
        assertAllRead(env, secrets);
      });

      await t.step(`${form}: the doctor's text and --json report`, async () => {
        const { env, secrets } = await markedEnv(w, `${dir}`, accepted, form, "component");
        const [text, json]: MainRun[] = await Promise.all([
          runMain(["--doctor", "--verbose"], env),
          runMain(["--doctor", "--json"], env),
        ]);
        // The secrets were used: the marked password logged in and the token was accepted.
        assert.match(text.stdout, /^✓ XMPP SASL .*marked@localhost/m, text.stdout);
        assert.match(text.stdout, /^✓ Mattermost token /m, text.stdout);
        const report = JSON.parse(json.stdout) as { steps: { id: string; status: string }[] };
        assert.equal(report.steps.find((s) => s.id === "xmpp.sasl")?.status, "pass");
        assertNoSecret("the doctor's text", text.stdout + text.stderr, secrets);
        assertNoSecret("the doctor's JSON", json.stdout + json.stderr, secrets);
        assertAllRead(env, secrets);
      });

      for (const mode of ["component", "ibr"] as const) {
        await t.step(`${form}: the bridge's debug log in ${mode} mode`, async () => {
          const { env, secrets } = await markedEnv(w, `${dir}`, accepted, form, mode);
          const text = `secrets test ${form} ${mode}`;
          const log = await runBridge(w, env, async () => {
            await w.mm.postAs(w.bob.id, w.channel.id, text);
            // bob speaks as himself: a ghost (ibr, its password encrypted with the key) or a puppet (component).
            await w.alice.waitForMessages(w.room, (m) => m.nick === "bob" && m.body === text, 1, 20_000);
            // The marked command token is accepted.
            const reply = await w.mm.invokeCommand({
              trigger: "xmppbridge",
              channelId: w.channel.id,
              userId: w.mm.admin.id,
              text: "status",
              token: secrets.MM_COMMAND_TOKEN,
            });
            assert.match(JSON.stringify(reply), /hall@conference\.localhost/);
          });
          // Debug lines are there, with the message text (logged only at debug).
          assert.match(log, /"level":"DEBUG"/);
          assert.ok(log.includes(text), "the debug log shows message text");
          assertNoSecret(`the bridge's log (${mode})`, log, secrets);
          assertAllRead(env, secrets);
        });
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await w.stop();
  }
});

Deno.test("the doctor's masker hides a secret inside its --json report, where it is JSON-escaped", () => {
  const secret = marker("XMPP_PASSWORD");
  const mask = masker([secret]);
  const report = JSON.stringify({
    steps: [{ detail: `the server said: ${secret}`, url: encodeURIComponent(secret) }],
  });
  const masked = mask(report);
  assert.ok(!masked.includes(core("XMPP_PASSWORD")), masked);
  assert.deepEqual(JSON.parse(masked), { steps: [{ detail: "the server said: ***", url: "***" }] });
});

/**
 * `mmxmpp --doctor`: checks that the configured servers are reachable and the credentials work.
 *
 * Each step prints one line with a mark and its time, and a "what to do" line when it fails.
 * Exit code 0 when every step passed, 1 otherwise, 2 for bad flags or configuration.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { loadConfig } from "./src/config.ts";
import { createXmppClient } from "./src/xmpp/client.ts";
import { createClient } from "./src/mattermost/api.ts";
import { errorMessage } from "./src/core/errors.ts";

/** One diagnostic step's outcome. */
export interface StepResult {
  name: string;
  ok: boolean;
  ms: number;
  detail: string;
  fix?: string;
}

/** Runs the doctor with `args` and `env`; returns the exit code. */
export async function runDoctor(args: string[], env: Record<string, string | undefined>): Promise<number> {
  let flags;
  try {
    flags = parseArgs({
      args,
      options: {
        json: { type: "boolean" },
        "skip-mattermost": { type: "boolean" },
        help: { type: "boolean" },
      },
      strict: true,
    }).values;
  } catch (err) {
    console.error(`mmxmpp --doctor: ${errorMessage(err)}`);
    return 2;
  }
  if (flags.help) {
    console.log(
      "Usage: mmxmpp --doctor [--json] [--skip-mattermost]\nChecks the servers configured in the environment.",
    );
    return 0;
  }
  const loaded = loadConfig(env);
  if (!loaded.ok) {
    for (const e of loaded.errors) console.error(`mmxmpp --doctor: configuration error: ${e}`);
    return 2;
  }
  const { config } = loaded;
  const results: StepResult[] = [];
  const step = async (name: string, fix: string, fn: () => Promise<string>) => {
    const t0 = performance.now();
    try {
      const detail = await fn();
      results.push({ name, ok: true, ms: performance.now() - t0, detail });
    } catch (err) {
      results.push({ name, ok: false, ms: performance.now() - t0, detail: errorMessage(err), fix });
    }
    if (!flags.json) printStep(results.at(-1)!);
  };

  await step("XMPP login", "check XMPP_JID, XMPP_PASSWORD, XMPP_SERVICE and the TLS settings", async () => {
    const [local, domain] = config.xmpp.jid.split("@");
    const client = createXmppClient({
      service: config.xmpp.service,
      domain,
      username: local,
      password: config.xmpp.password,
      resource: `${config.xmpp.resource}-doctor`,
      tls: { ca: config.xmpp.ca, insecureSkipVerify: config.xmpp.tlsInsecureSkipVerify },
    });
    client.reconnect.stop();
    let failure: unknown;
    client.on("error", (err: unknown) => failure ??= err);
    try {
      await withTimeout(client.start(), 15_000, `no answer from ${config.xmpp.service}`);
      const secure = client.isSecure() ? `TLS ${client.negotiated.tlsProtocol ?? ""}`.trim() : "unencrypted";
      return `${config.xmpp.jid} via ${config.xmpp.service}, ${secure}, SASL ${client.negotiated.mechanism}`;
    } catch (err) {
      throw new Error(describeXmpp(failure ?? err));
    } finally {
      await client.stop().catch(() => {});
    }
  });

  if (!flags["skip-mattermost"]) {
    await step("Mattermost token", "check MM_URL and MM_TOKEN (a bot or personal access token)", async () => {
      const client = createClient(config.mattermost.url, config.mattermost.token);
      const me = await client.getMe();
      return `${config.mattermost.url} as ${me.username}${me.is_bot ? " (bot)" : ""}, roles ${me.roles}`;
    });
  }

  const failed = results.filter((r) => !r.ok).length;
  if (flags.json) console.log(JSON.stringify({ ok: failed === 0, steps: results }, null, 2));
  else console.log(`\n${results.length - failed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

function printStep(r: StepResult): void {
  console.log(`${r.ok ? "✓" : "✗"} ${r.name} (${Math.round(r.ms)} ms): ${r.detail}`);
  if (!r.ok && r.fix) console.log(`  → what to do: ${r.fix}`);
}

function describeXmpp(err: unknown): string {
  const e = err as { condition?: string; code?: string; message?: string };
  if (e?.condition === "not-authorized") return "the server refused the password (not-authorized)";
  if (e?.code === "ECONNREFUSED") return "connection refused";
  return e?.condition ?? e?.message ?? String(err);
}

function withTimeout<T>(p: Promise<T>, ms: number, text: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => timer = setTimeout(() => reject(new Error(text)), ms)),
  ]);
}

if (import.meta.main) Deno.exit(await runDoctor(Deno.args, Deno.env.toObject()));

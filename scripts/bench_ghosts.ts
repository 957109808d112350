/**
 * `deno task bench` section: what bringing IBR ghosts online costs the bridge, per ghost: CPU and resident memory,
 * at first (registering the account) and warm (logging in to an existing one), with the ghosts trusting
 * XMPP_CA_FILE alone (as they do) and, for comparison in the same run, the system's CAs as well. Each phase runs in a
 * fresh child process against one real Prosody, so that one phase's memory does not hide in another's. A last
 * phase has the warm ghosts each join one room and say one message there, as a channel's users would: every
 * ghost then receives every other's presence and message, a cost that grows with the square of their number.
 *
 * @module
 */
import process from "node:process";
import { SecretBox } from "../src/core/secretbox.ts";
import { Store } from "../src/core/store.ts";
import { IbrGhosts, xep0077Registrar } from "../src/xmpp/intents/ibr_ghosts.ts";
import { createXmppClient, type XmppClient } from "../src/xmpp/session/client.ts";
import { buildGroupchat } from "../src/xmpp/protocol/stanza.ts";

/** One phase's numbers. */
export interface GhostPhase {
  ghosts: number;
  wall_ms: number;
  cpu_ms_per_ghost: number;
  rss_kib_per_ghost: number;
}

const CHILD = "--ghost-phase";
/** The room the "warm-room" phase's ghosts join (Prosody's MUC service in the tests' setup). */
const ROOM = "bench@conference.localhost";
/** How many ghosts connect at once. */
const CONCURRENCY = 10;

/** Runs the phases against a fresh Prosody; `n` ghosts each. */
export async function benchGhosts(n = 100): Promise<Record<string, GhostPhase | number>> {
  const { startProsody } = await import("../tests/helpers/prosody.ts");
  const prosody = await startProsody();
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-bench-ghosts-" });
  try {
    const phase = async (name: string): Promise<GhostPhase> => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-all",
          "--unstable-kv",
          "--v8-flags=--expose-gc",
          import.meta.filename!,
          CHILD,
          name,
          String(n),
          prosody.service,
          prosody.caFile,
          `${dir}/ghosts.kv`,
        ],
        stdout: "piped",
        stderr: "inherit",
      }).output();
      if (!out.success) throw new Error(`ghost phase ${name} failed`);
      return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
    };
    const first = await phase("register");
    const caAlone = await phase("warm");
    const withSystem = await phase("warm-system");
    const inRoom = await phase("warm-room");
    return {
      first_login: first,
      warm_ca_alone: caAlone,
      warm_with_system_cas: withSystem,
      warm_joined_one_room: inRoom,
      rss_ratio: Math.round(withSystem.rss_kib_per_ghost / caAlone.rss_kib_per_ghost * 10) / 10,
      cpu_ratio: Math.round(withSystem.cpu_ms_per_ghost / caAlone.cpu_ms_per_ghost * 10) / 10,
    };
  } finally {
    await prosody.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

/** The child: brings `n` ghosts online in one way, prints its numbers as JSON, and exits. */
async function childPhase([name, nArg, service, caFile, kvPath]: string[]): Promise<void> {
  const n = Number(nArg);
  const store = await Store.open(kvPath);
  const box = await SecretBox.create(undefined);
  const tls = { ca: await Deno.readTextFile(caFile) };
  const ghosts = new IbrGhosts({
    store,
    box,
    registrar: xep0077Registrar({ service, domain: "localhost", tls }, "bridge@localhost"),
    service,
    domain: "localhost",
    prefix: "bench_",
    nickFormat: "{username}",
    resource: "bench",
    tls,
    idleMs: 3_600_000,
    cleanup: false,
  });
  await ghosts.start();
  const clients: XmppClient[] = [];
  const bringOnline = async (i: number) => {
    const author = { id: `user${i}`, name: `user${i}` };
    if (name === "warm-room") {
      // As a channel's users each saying one thing: every ghost joins the one room and speaks there.
      const intent = (await ghosts.intentFor(author))!;
      await intent.ensureJoined(ROOM);
      await intent.sendAwaitingReflection(ROOM, buildGroupchat(ROOM, "hello", `bench-${i}`), `bench-${i}`);
      return;
    }
    if (name !== "warm-system") return void await ghosts.intentFor(author);
    // The way every ghost connected before: the system's CAs and XMPP_CA_FILE, on each connection.
    const record = (await store.getGhost("mattermost", author.id))!;
    const client = createXmppClient({
      service,
      domain: "localhost",
      username: record.jid.split("@")[0],
      password: await box.open(record.password),
      resource: "bench",
      tls: { ...tls, caOnly: false },
    });
    client.on("error", () => {});
    await client.start();
    clients.push(client);
  };
  const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
  gc();
  const rss0 = process.memoryUsage().rss;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i += CONCURRENCY) {
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, n - i) }, (_, j) => bringOnline(i + j)));
  }
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  gc();
  const rss = process.memoryUsage().rss;
  const result: GhostPhase = {
    ghosts: n,
    wall_ms: Math.round(wall),
    cpu_ms_per_ghost: Math.round((cpu.user + cpu.system) / 1000 / n * 10) / 10,
    rss_kib_per_ghost: Math.round((rss - rss0) / 1024 / n),
  };
  await Promise.all(clients.map((c) => c.stop().catch(() => {})));
  await ghosts.stop();
  store.close();
  console.log(JSON.stringify(result));
  Deno.exit(0);
}

if (import.meta.main) {
  if (Deno.args[0] === CHILD) await childPhase(Deno.args.slice(1));
  else console.log(await benchGhosts(Number(Deno.args[0] ?? 100)));
}

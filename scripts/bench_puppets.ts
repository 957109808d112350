/**
 * Component puppets at scale, by hand (minutes at 10,000): `ROOMS × PER` puppets of one XEP-0114 component each
 * join one of `ROOMS` rooms on a fresh Prosody and say one message there, `CONCURRENCY` at a time; prints the
 * wall time, the CPU and the process's resident memory after a forced GC. Only the component side runs (no
 * Mattermost); run it with the start task's V8 flags, as the bridge runs.
 *
 * Usage: deno run -A --unstable-kv --v8-flags=--expose-gc,--max-semi-space-size=1 scripts/bench_puppets.ts [ROOMS] [PER]
 *
 * @module
 */
import process from "node:process";
import { ComponentPuppets } from "../src/xmpp/intents/puppets.ts";
import { buildGroupchat } from "../src/xmpp/protocol/stanza.ts";
import { startProsody } from "../tests/helpers/prosody.ts";

const CONCURRENCY = 25;

const rooms = Number(Deno.args[0] ?? 20);
const perRoom = Number(Deno.args[1] ?? 100);
const prosody = await startProsody();
const puppets = new ComponentPuppets({
  service: prosody.componentService,
  domain: prosody.componentDomain,
  secret: prosody.componentSecret,
  reflectionTimeoutMs: 60_000,
  joinTimeoutMs: 60_000,
  reconnectDelayMs: 250,
});
try {
  await puppets.start();
  const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
  gc();
  const rss0 = process.memoryUsage().rss;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let r = 0; r < rooms; r++) {
    const room = `r${r}@${prosody.mucDomain}`;
    for (let i = 0; i < perRoom; i += CONCURRENCY) {
      await Promise.all(Array.from({ length: Math.min(CONCURRENCY, perRoom - i) }, async (_, j) => {
        const n = r * perRoom + i + j;
        const intent = (await puppets.intentFor({ id: `u${n}`, name: `user${n}` }))!;
        await intent.ensureJoined(room);
        await intent.sendAwaitingReflection(room, buildGroupchat(room, "hi", `o${n}`), `o${n}`);
      }));
    }
  }
  const cpu = process.cpuUsage(cpu0);
  gc();
  await new Promise((r) => setTimeout(r, 500));
  gc();
  const m = process.memoryUsage();
  const n = rooms * perRoom;
  const mib = (bytes: number) => Math.round(bytes / 1048576);
  console.log(
    `${n} puppets in ${rooms} rooms: ${Math.round(performance.now() - t0)} ms, CPU ${
      Math.round((cpu.user + cpu.system) / 1000)
    } ms; RSS ${mib(rss0)} → ${mib(m.rss)} MiB, V8 heap used ${mib(m.heapUsed)} of ${mib(m.heapTotal)} MiB`,
  );
} finally {
  await puppets.stop();
  await prosody.stop();
}

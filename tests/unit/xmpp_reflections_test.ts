/** Waiting for a room's reflections: settled by the reflection, a bounce, a failed send, or in time, in order. */
import assert from "node:assert/strict";
import { Reflections } from "../../src/xmpp/muc/reflections.ts";
import type { Groupchat } from "../../src/xmpp/protocol/stanza.ts";
import { sleep } from "../helpers/wait.ts";

const ROOM = "room@conference.example.org";

function reflection(originId: string, stanzaId: string, extra: Partial<Groupchat> = {}): Groupchat {
  return { room: ROOM, nick: "bridge", originId, stanzaId, delayed: false, ...extra } as Groupchat;
}

/** How each promise ended, in the order they ended. */
function outcomes(pending: Record<string, Promise<string | undefined>>): string[] {
  const out: string[] = [];
  for (const [id, p] of Object.entries(pending)) {
    p.then((sid) => out.push(`${id}:${sid}`), (err) => out.push(`${id}:${(err as Error).message}`));
  }
  return out;
}

Deno.test("reflections resolve their waiters; those never reflected time out oldest first, each after the timeout", async () => {
  const r = new Reflections(60);
  const a = r.expect(ROOM, "a");
  await sleep(30);
  const b = r.expect(ROOM, "b");
  const c = r.expect(ROOM, "c");
  const ended = outcomes({ a, b, c });
  assert.equal(r.settle(reflection("b", "sid-b")), "resolved");
  assert.equal(r.settle(reflection("b", "sid-b")), "unknown", "settled once");
  await sleep(45);
  // a is over its time (75 ms), c not yet (45 ms): only a.
  assert.deepEqual(ended, ["b:sid-b", `a:${ROOM} did not reflect a sent message in time`]);
  await c.catch(() => {});
  assert.deepEqual(ended, [
    "b:sid-b",
    `a:${ROOM} did not reflect a sent message in time`,
    `c:${ROOM} did not reflect a sent message in time`,
  ]);
});

Deno.test("a bounce, a failed send and a disconnect settle their waiters at once", async () => {
  const r = new Reflections(60_000);
  const a = r.expect(ROOM, "a");
  const b = r.expect(ROOM, "b");
  const c = r.expect(ROOM, "c");
  const ended = outcomes({ a, b, c });
  const bounce = reflection("a", "", { error: { condition: "forbidden" } } as Partial<Groupchat>);
  assert.equal(r.settle(bounce), "bounced");
  r.cancel("b", new Error("write failed"));
  r.rejectAll(new Error("disconnected"));
  await Promise.allSettled([a, b, c]);
  assert.deepEqual(ended, [`a:${ROOM} refused a message: forbidden`, "b:write failed", "c:disconnected"]);
});

Deno.test("once nothing waits, no timer keeps the process alive", async () => {
  // A process whose waits all settled ends on its own, long before the 10-minute timeout of its first wait.
  const module = new URL("../../src/xmpp/muc/reflections.ts", import.meta.url).href;
  const code = `
    const { Reflections } = await import(${JSON.stringify(module)});
    const r = new Reflections(600_000);
    const room = ${JSON.stringify(ROOM)};
    const a = r.expect(room, "a");
    const b = r.expect(room, "b");
    r.settle({ room, nick: "bridge", originId: "a", stanzaId: "sid", delayed: false });
    r.cancel("b", new Error("write failed"));
    console.log(await a, await b.catch((e) => e.message));
  `;
  const child = new Deno.Command(Deno.execPath(), { args: ["eval", code], stdout: "piped", stderr: "piped" })
    .spawn();
  const killer = setTimeout(() => child.kill(), 30_000);
  const out = await child.output();
  clearTimeout(killer);
  assert.equal(
    new TextDecoder().decode(out.stdout).trim(),
    "sid write failed",
    new TextDecoder().decode(out.stderr),
  );
  assert.equal(out.code, 0, "ended on its own, not killed");
});

Deno.test("a second wait for the same id replaces the first, which gives way", async () => {
  const r = new Reflections(60_000);
  const first = r.expect(ROOM, "a");
  const second = r.expect(ROOM, "a");
  await assert.rejects(first, /superseded/);
  assert.equal(r.settle(reflection("a", "sid")), "resolved");
  assert.equal(await second, "sid");
});

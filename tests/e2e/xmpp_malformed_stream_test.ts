/**
 * A server that sends XML the parser cannot place (an end tag before any start tag): the bridge's client treats it
 * as a bad-format stream error, like the parser's other errors, instead of throwing from the socket's data listener,
 * which would end the bridge's process. A small fake server on a real socket: Prosody never sends such XML.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { createXmppClient } from "../../src/xmpp/session/client.ts";
import { settleWithin } from "../../src/core/deadline.ts";

Deno.test("an end tag before any start tag fails start() as a stream error and does not throw", async () => {
  const server = net.createServer((socket) => {
    socket.on("error", () => {});
    // Answers the client's stream header with a stray end tag.
    socket.once("data", () => socket.write("</x>"));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  const uncaught: unknown[] = [];
  const collect = (e: ErrorEvent) => {
    e.preventDefault();
    uncaught.push(e.error);
  };
  addEventListener("error", collect);
  const client = createXmppClient({
    service: `xmpp://127.0.0.1:${port}`,
    domain: "localhost",
    username: "bridge",
    password: "secret-pass",
    resource: "test",
    timeoutMs: 2_000,
  });
  client.reconnect.stop();
  try {
    const failure = await client.start().then(() => undefined, (err: Error) => err);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(uncaught, [], "the malformed XML was thrown from a socket listener");
    assert.ok(failure instanceof Error, "start() did not fail");
    assert.doesNotMatch(failure.message, /secret-pass/);
  } finally {
    removeEventListener("error", collect);
    await settleWithin(client.stop().catch(() => {}), 2_000);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

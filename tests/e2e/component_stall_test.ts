/**
 * A component port that answers the stream header only after the component's start() gave up: nothing goes on
 * negotiating on that stream and no rejection is left unhandled (which would end the bridge's process).
 *
 * The server is a small fake on a real socket, since Prosody cannot be told to answer late.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { XmppComponent } from "../../src/xmpp/intents/component.ts";
import { deadline } from "../../src/core/deadline.ts";

Deno.test("a component stream header that comes after start() gave up leaves nothing behind", async () => {
  const unhandled: unknown[] = [];
  const collect = (e: PromiseRejectionEvent) => {
    unhandled.push(e.reason);
    e.preventDefault();
  };
  addEventListener("unhandledrejection", collect);

  // Answers the stream header once it sees the component close its stream (or the connection): late.
  const seen: string[] = [];
  let closed: Promise<void> = Promise.resolve();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    closed = new Promise((resolve) => socket.once("close", () => resolve()));
    socket.on("data", (data) => {
      seen.push(String(data));
      if (!String(data).includes("</stream:stream>") || socket.destroyed) return;
      socket.write(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' " +
          "xmlns:stream='http://etherx.jabber.org/streams' id='c1' from='bridge.localhost'>",
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const component = new XmppComponent({
    service: `xmpp://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    domain: "bridge.localhost",
    secret: "component-secret",
  });
  const errors: unknown[] = [];
  component.on("error", (err) => errors.push(err));
  try {
    const err = await component.start().then(
      () => assert.fail("start() succeeded against a server that never answered in time"),
      (err: Error) => err,
    );
    assert.match(err.message, /did not answer in time/);
    await deadline(closed, 8_000, () => new Error("the component's connection was never closed"));
    const handshakes = () => seen.filter((d) => d.includes("<handshake")).length;
    if (handshakes() > 0) {
      // It went on to the handshake on the late stream: wait for that to fail too.
      await deadline(
        new Promise((resolve) => component.on("error", resolve)),
        8_000,
        () => new Error("the late handshake never failed"),
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.deepEqual(unhandled, [], "no rejection was left unhandled");
    assert.equal(handshakes(), 0, "no handshake on a stream that opened after start() gave up");
    assert.doesNotMatch(`${err.message} ${errors.join(" ")}`, /component-secret/);
  } finally {
    removeEventListener("unhandledrejection", collect);
    await component.stop();
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
});

Deno.test("a component port that resets the connection after stop() gave up waiting for it ends nothing", async () => {
  const uncaught: unknown[] = [];
  const collect = (e: ErrorEvent) => {
    uncaught.push(e.error);
    e.preventDefault();
  };
  addEventListener("error", collect);
  // Completes the handshake, then, as a server busy with what was written last, neither answers the closing of the
  // stream nor closes its side in time; it resets the connection later.
  let reset = () => {};
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on("error", () => {});
    socket.on("data", (data) => {
      const text = String(data);
      if (text.includes("<stream:stream")) {
        socket.write(
          "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' " +
            "xmlns:stream='http://etherx.jabber.org/streams' id='c1' from='bridge.localhost'>",
        );
      }
      if (text.includes("<handshake")) socket.write("<handshake/>");
      if (text.includes("</stream:stream>")) reset = () => socket.resetAndDestroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const component = new XmppComponent({
    service: `xmpp://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    domain: "bridge.localhost",
    secret: "component-secret",
  });
  try {
    await component.start();
    await component.stop();
    reset();
    // The reset reaches the component's socket as a read error, after it let go of the socket.
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(uncaught, [], "an error reached the top level");
  } finally {
    removeEventListener("error", collect);
    await component.stop();
    server.close();
  }
});

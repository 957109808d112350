/**
 * Stopping the component puppets: the component's stream stays open until the rooms confirmed the puppets'
 * departures, so that a server still busy with them (each is a presence to every occupant left) does not lose the
 * ones it had not read yet when the connection closed: those puppets would stay in their rooms.
 *
 * The server is a small fake on a real socket, since Prosody cannot be told to confirm late.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { ComponentPuppets } from "../../src/xmpp/intents/puppets.ts";

const ROOM = "hall@conference.localhost";
const HEADER = "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' " +
  "xmlns:stream='http://etherx.jabber.org/streams' id='c1' from='bridge.localhost'>";
/** How long the fake room takes to confirm each departure. */
const CONFIRM_AFTER_MS = 400;

/** The value of attribute `name` in an element's start tag. */
const attr = (tag: string, name: string) => tag.match(new RegExp(`\\s${name}=["']([^"']*)["']`))?.[1];

/** The room's own presence of an occupant, as Prosody sends it to the occupant itself (status 110). */
const selfPresence = (from: string, to: string, type?: string) =>
  `<presence from='${from}' to='${to}'${type ? ` type='${type}'` : ""}>` +
  "<x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'/>" +
  "<status code='110'/></x></presence>";

Deno.test("stop() keeps the component's stream open until the rooms confirmed every puppet's departure", async () => {
  const events: string[] = [];
  const server = net.createServer((socket) => {
    socket.on("error", () => {});
    let buffer = "";
    socket.on("data", (data) => {
      buffer += String(data);
      if (buffer.includes("<stream:stream") && !events.includes("open")) {
        events.push("open");
        socket.write(HEADER);
      }
      if (buffer.includes("<handshake") && !events.includes("handshake")) {
        events.push("handshake");
        socket.write("<handshake/>");
      }
      for (const [tag] of buffer.matchAll(/<presence\b[^>]*>/g)) {
        const from = attr(tag, "from")!, to = attr(tag, "to")!;
        if (attr(tag, "type") === "unavailable") {
          events.push(`left ${to}`);
          // A busy room: the departure is confirmed a while later.
          setTimeout(() => {
            if (socket.destroyed) return;
            events.push(`confirmed ${to}`);
            socket.write(selfPresence(to, from, "unavailable"));
          }, CONFIRM_AFTER_MS);
        } else socket.write(selfPresence(to, from));
      }
      if (buffer.includes("</stream:stream>")) {
        events.push("close");
        socket.end("</stream:stream>");
      }
      buffer = buffer.slice(Math.max(buffer.lastIndexOf(">") + 1, 0));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const puppets = new ComponentPuppets({
    service: `xmpp://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    domain: "bridge.localhost",
    secret: "component-secret",
  });
  try {
    await puppets.start();
    const names = ["ann", "ben", "cat"];
    for (const name of names) {
      const intent = await puppets.intentFor({ id: `id-${name}`, name });
      await intent.ensureJoined(ROOM);
    }
    // Every join answered: each puppet is an occupant with its nick.
    for (let i = 0; i < 50 && names.some((n) => !puppets.presentIn(`id-${n}`, ROOM)); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(names.every((n) => puppets.presentIn(`id-${n}`, ROOM)), "every puppet joined");

    await puppets.stop();
    const close = events.indexOf("close");
    assert.ok(close > 0, `the stream was closed: ${events.join(", ")}`);
    assert.deepEqual(
      events.slice(0, close).filter((e) => e.startsWith("confirmed")).sort(),
      names.map((n) => `confirmed ${ROOM}/${n}`),
      `every departure was confirmed before the stream closed: ${events.join(", ")}`,
    );
  } finally {
    await puppets.stop();
    await new Promise((resolve) => server.close(resolve));
  }
});

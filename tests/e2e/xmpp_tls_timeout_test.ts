/**
 * A server that stalls during stream negotiation: the bridge's client fails start() with an explained, transient
 * error, drops the connection so that a reconnect can follow, and leaves no unhandled rejection (which would end
 * the bridge's process).
 *
 * The server is a small fake on real sockets (node:net, then node:tls after STARTTLS), since Prosody cannot be
 * told to stop answering after STARTTLS.
 */
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { createXmppClient, type XmppClient } from "../../src/xmpp/session/client.ts";
import { explainXmppFailure } from "../../src/xmpp/explain.ts";
import { deadline, settleWithin } from "../../src/core/deadline.ts";
import { selfSignedCert } from "../helpers/tls.ts";

const TIMEOUT_MS = 1_000;

const STREAM_HEADER = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' " +
  "xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='localhost' version='1.0'>";
const STARTTLS_FEATURES = "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>" +
  "</starttls></stream:features>";

/** One client connection as the fake server saw it. */
interface Connection {
  /** Resolves with the first bytes the client sent over TLS (its new stream header). */
  headerAfterTls: Promise<string>;
  /** Resolves when the socket is closed. */
  closed: Promise<void>;
}

/**
 * Offers STARTTLS, answers `<proceed/>`, completes the TLS handshake and then never answers the new stream header.
 * Each connection waits for `answerHeader` before it answers the client's first stream header; with `proceed`
 * false, the server never answers `<starttls/>`.
 */
async function stallingServer(
  cert: string,
  key: string,
  { answerHeader = () => Promise.resolve(), proceed = true }: {
    answerHeader?: () => Promise<void>;
    proceed?: boolean;
  } = {},
) {
  const connections: Connection[] = [];
  const arrivals: ((c: Connection) => void)[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    let sawTlsHeader: (text: string) => void = () => {};
    const connection: Connection = {
      headerAfterTls: new Promise((resolve) => sawTlsHeader = resolve),
      closed: new Promise((resolve) => socket.once("close", () => resolve())),
    };
    socket.once("data", async () => {
      await answerHeader();
      if (socket.destroyed) return;
      socket.write(STREAM_HEADER + STARTTLS_FEATURES);
      socket.once("data", () => {
        if (!proceed) return;
        socket.write("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
        const secure = new tls.TLSSocket(socket, { isServer: true, cert, key });
        secure.on("error", () => {});
        secure.once("data", (data) => sawTlsHeader(String(data)));
      });
    });
    connections.push(connection);
    arrivals.shift()?.(connection);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    service: `xmpp://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    connections,
    /** The `n`th connection (from 1), once it arrives. */
    connection(n: number): Promise<Connection> {
      if (connections.length >= n) return Promise.resolve(connections[n - 1]);
      return new Promise((resolve) => arrivals.push(resolve));
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Runs `fn` with a self-signed certificate for localhost, and collects unhandled rejections meanwhile. */
async function withCert(
  fn: (cert: string, key: string, unhandled: unknown[]) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const unhandled: unknown[] = [];
  const collect = (e: PromiseRejectionEvent) => {
    unhandled.push(e.reason);
    e.preventDefault();
  };
  addEventListener("unhandledrejection", collect);
  try {
    const { cert, key } = await selfSignedCert(dir);
    await fn(cert, key, unhandled);
  } finally {
    removeEventListener("unhandledrejection", collect);
    await Deno.remove(dir, { recursive: true });
  }
}

function client(service: string, cert: string): XmppClient {
  return createXmppClient({
    service,
    domain: "localhost",
    username: "bridge",
    password: "secret-pass",
    resource: "test",
    tls: { ca: cert },
    timeoutMs: TIMEOUT_MS,
  });
}

/** Lets the event loop turn, so that a rejection nobody handled is reported. */
const turn = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test(
  "no stream header after STARTTLS: start() rejects with a transient, explained error, and the client reconnects",
  async () => {
    await withCert(async (cert, key, unhandled) => {
      const server = await stallingServer(cert, key);
      const xmpp = client(server.service, cert);
      xmpp.reconnect.delay = 50;
      // Listens for the first failure only: the reconnect's failure then finds no listener of the test's.
      const errors: unknown[] = [];
      const onError = (err: never) => {
        errors.push(err);
        xmpp.removeListener("error", onError);
      };
      xmpp.on("error", onError);
      try {
        const err = await xmpp.start().then(
          () => assert.fail("start() succeeded against a server that never answered"),
          (err: Error) => err,
        );
        const first = await server.connection(1);
        assert.match(
          await first.headerAfterTls,
          /<stream:stream/,
          "the client restarted the stream over TLS",
        );
        assert.equal(err.name, "TimeoutError");
        assert.match(err.message, /after STARTTLS.*no stream header.*within 1000 ms/);
        assert.equal(errors[0], err, "the connection's error event carried the same failure");

        const explained = explainXmppFailure(err, {
          service: server.service,
          account: "bridge@localhost",
          passwordSetting: "XMPP_PASSWORD",
          skipVerifySetting: "XMPP_TLS_INSECURE_SKIP_VERIFY=true",
        });
        assert.equal(explained.transient, true, "a server slow after STARTTLS is worth retrying");
        assert.match(explained.reason, /after STARTTLS/);
        assert.doesNotMatch(`${err.message} ${explained.reason}`, /secret-pass/);

        // The stalled connection is dropped, so that @xmpp/reconnect tries again on a new one.
        await deadline(first.closed, 5_000, () => new Error("the stalled connection was never closed"));
        const second = await deadline(
          server.connection(2),
          5_000,
          () => new Error("the client never reconnected"),
        );
        // The reconnect stalls the same way and is dropped too, with no "error" listener left but the client's own.
        await deadline(second.closed, 5_000, () => new Error("the stalled reconnection was never closed"));
        await turn();
        assert.deepEqual(unhandled, []);
      } finally {
        xmpp.reconnect.stop();
        await settleWithin(xmpp.stop(), 3_000);
        await server.close();
      }
    });
  },
);

Deno.test(
  "a stream that opens only after start() gave up leaves no unhandled rejection behind",
  async () => {
    await withCert(async (cert, key, unhandled) => {
      let release = () => {};
      const released = new Promise<void>((resolve) => release = resolve);
      const server = await stallingServer(cert, key, { answerHeader: () => released });
      const xmpp = client(server.service, cert);
      xmpp.reconnect.stop();
      const errors: unknown[] = [];
      xmpp.on("error", (err: never) => errors.push(err));
      try {
        const err = await xmpp.start().then(
          () => assert.fail("start() succeeded against a server that never answered"),
          (err: Error) => err,
        );
        // Now the server answers, late: a client that went on negotiating would run STARTTLS and then time out
        // again after it, with start() long settled.
        release();
        const first = await server.connection(1);
        await deadline(
          Promise.race([first.closed, new Promise((resolve) => xmpp.on("error", resolve))]),
          5_000,
          () => new Error("the stream that did not open was neither closed nor failed"),
        );
        await turn();
        assert.deepEqual(unhandled, [], "no rejection was left unhandled");
        assert.deepEqual(errors, [], "nothing went on negotiating after start() rejected");
        assert.equal(err.name, "TimeoutError");
        assert.match(err.message, /no stream header.*within 1000 ms/);
      } finally {
        await settleWithin(xmpp.stop(), 3_000);
        await server.close();
      }
    });
  },
);

Deno.test("a server that answers in another protocol (HTTP): start() rejects, nothing left unhandled", async () => {
  await withCert(async (_cert, _key, unhandled) => {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on("error", () => {});
      socket.once(
        "data",
        () =>
          socket.write("HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\n\r\n<html>Bad Request</html>"),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const xmpp = client(`xmpp://127.0.0.1:${(server.address() as net.AddressInfo).port}`, "");
    xmpp.reconnect.stop();
    xmpp.on("error", () => {});
    try {
      const err = await xmpp.start().then(
        () => assert.fail("start() succeeded against an HTTP server"),
        (err: Error) => err,
      );
      await turn();
      assert.deepEqual(unhandled, [], "no rejection was left unhandled");
      assert.match(String(err?.message), /must be a child/, "start() rejected with the XML parser's error");
    } finally {
      await settleWithin(xmpp.stop(), 3_000);
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

Deno.test("no answer to <starttls/>: start() rejects naming STARTTLS, and the connection is dropped", async () => {
  await withCert(async (cert, key, unhandled) => {
    const server = await stallingServer(cert, key, { proceed: false });
    const xmpp = client(server.service, cert);
    xmpp.reconnect.stop();
    xmpp.on("error", () => {});
    try {
      const err = await xmpp.start().then(
        () => assert.fail("start() succeeded against a server that never answered <starttls/>"),
        (err: Error) => err,
      );
      assert.equal(err.name, "TimeoutError");
      assert.match(err.message, /^STARTTLS: the server did not answer in time/);
      const first = await server.connection(1);
      await deadline(first.closed, 5_000, () => new Error("the stalled connection was never closed"));
      await turn();
      assert.deepEqual(unhandled, []);
    } finally {
      await settleWithin(xmpp.stop(), 3_000);
      await server.close();
    }
  });
});

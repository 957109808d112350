/**
 * A server that takes the login as far as SASL and then never answers: the doctor's login step says the server did
 * not answer while authenticating, and points at the server's load, not at the password (which was never judged).
 *
 * The server is a small fake on real sockets (node:net, then node:tls after STARTTLS): Prosody cannot be told to
 * stop answering in the middle of SASL.
 */
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { login, LoginError } from "../../src/doctor/xmpp_login.ts";
import { selfSignedCert } from "../helpers/tls.ts";

const HEADER = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' " +
  "xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='localhost' version='1.0'>";
const STARTTLS = "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>" +
  "</starttls></stream:features>";
const MECHANISMS = "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" +
  "<mechanism>SCRAM-SHA-1</mechanism></mechanisms></stream:features>";

/** Negotiates STARTTLS and offers SCRAM-SHA-1, then stays silent; `sawAuth` resolves when `<auth>` arrives. */
async function silentAtSasl(cert: string, key: string) {
  const sockets = new Set<net.Socket | tls.TLSSocket>();
  let authSeen!: () => void;
  const sawAuth = new Promise<void>((resolve) => authSeen = resolve);
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    socket.once("data", () => {
      socket.write(HEADER + STARTTLS);
      socket.once("data", () => {
        socket.write("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
        const secure = new tls.TLSSocket(socket, { isServer: true, cert, key });
        sockets.add(secure);
        secure.on("error", () => {});
        secure.once("data", () => {
          secure.write(HEADER + MECHANISMS);
          secure.on("data", (data) => {
            if (String(data).includes("<auth")) authSeen();
          });
        });
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    service: `xmpp://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    sawAuth,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

Deno.test("a server silent during SASL is reported as not answering, with a fix about the server, not the password", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { cert, key } = await selfSignedCert(dir);
    const server = await silentAtSasl(cert, key);
    try {
      const err = await login(
        {
          service: server.service,
          domain: "localhost",
          username: "bridge",
          password: "secret-pass",
          resource: "doctor",
          tls: { ca: cert },
          timeoutMs: 1_000,
        },
        "XMPP_PASSWORD",
        1_500,
      ).then(() => undefined, (e) => e);
      await server.sawAuth;
      assert.ok(err instanceof LoginError, `expected a LoginError, got ${err}`);
      assert.equal(err.phase, "auth");
      assert.match(err.message, /did not answer.*authenticat/);
      assert.ok(err.fix, "a timeout must come with what to do, not the step's password hint");
      assert.match(err.fix, /slow|overloaded/);
      assert.doesNotMatch(`${err.message} ${err.fix}`, /XMPP_PASSWORD|secret-pass/);
    } finally {
      await server.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

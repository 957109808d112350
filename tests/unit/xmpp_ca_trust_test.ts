/**
 * Which CAs a connection trusts. XMPP_CA_FILE adds to the system's CAs; connections that are many (one per ghost)
 * trust it alone while that verifies the server, since every TLS connection keeps the CAs it is given (the system's
 * cost about 0.8 MB per connection, see `deno task bench`).
 */
import assert from "node:assert/strict";
import tls from "node:tls";
import { CaTrust, tlsConnectOptions, type TlsOptions } from "../../src/xmpp/session/client.ts";
import { isCertificateRejection } from "../../src/xmpp/explain.ts";

const CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

Deno.test("XMPP_CA_FILE adds to the system's CAs, or stands alone for a connection that asks so", () => {
  assert.deepEqual(tlsConnectOptions("example.org", { ca: CA, caOnly: true }).ca, [CA]);
  assert.deepEqual(tlsConnectOptions("example.org", { ca: CA }).ca, [...tls.rootCertificates, CA]);
  assert.equal(tlsConnectOptions("example.org", {}).ca, undefined, "the system's CAs alone");
});

/** A certificate rejection as Node's TLS reports it. */
function unverified(): Error {
  return Object.assign(new Error("unable to verify the first certificate"), {
    code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  });
}

Deno.test("the CA alone while it verifies the server: every connection asks for it alone", async () => {
  const trust = new CaTrust({ ca: CA });
  const seen: TlsOptions[] = [];
  for (let i = 0; i < 3; i++) {
    await trust.connect((t) => Promise.resolve(seen.push(t)), isCertificateRejection);
  }
  assert.deepEqual(seen.map((t) => t.caOnly), [true, true, true]);
});

Deno.test("a certificate rejection with the CA alone: retried with the system's CAs, and so are later ones", async () => {
  const trust = new CaTrust({ ca: CA });
  const seen: boolean[] = [];
  const server = (t: TlsOptions) => {
    seen.push(!!t.caOnly);
    return t.caOnly ? Promise.reject(unverified()) : Promise.resolve("online");
  };
  assert.equal(await trust.connect(server, isCertificateRejection), "online");
  assert.equal(await trust.connect(server, isCertificateRejection), "online");
  assert.deepEqual(seen, [true, false, false], "learnt once");
});

Deno.test("another failure with the CA alone is not a reason to widen the trust", async () => {
  const trust = new CaTrust({ ca: CA });
  const refused = Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
  await assert.rejects(trust.connect(() => Promise.reject(refused), isCertificateRejection), /ECONNREFUSED/);
  const seen: boolean[] = [];
  await trust.connect((t) => Promise.resolve(seen.push(!!t.caOnly)), isCertificateRejection);
  assert.deepEqual(seen, [true]);
});

Deno.test("without XMPP_CA_FILE, nothing to learn: the system's CAs", async () => {
  const trust = new CaTrust({});
  const seen: TlsOptions[] = [];
  await trust.connect((t) => Promise.resolve(seen.push(t)), isCertificateRejection);
  assert.equal(seen[0].caOnly, false);
  assert.equal(tlsConnectOptions("example.org", seen[0]).ca, undefined);
});

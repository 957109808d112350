import assert from "node:assert/strict";
import { discoverServices, NoXmppServiceError, orderRecords } from "../../src/xmpp/session/srv.ts";
import { startDnsServer } from "../helpers/dns_server.ts";
import { freePort } from "../helpers/ports.ts";
import { deadline } from "../../src/core/deadline.ts";
import { PASSWORD, postsMatching, startWorld } from "../helpers/harness.ts";

Deno.test("SRV: records of both kinds are merged by priority, direct TLS first on a tie", async () => {
  const dns = await startDnsServer({
    "_xmpps-client._tcp.example.test": [{ priority: 10, weight: 0, port: 5223, target: "tls.example.test" }],
    "_xmpp-client._tcp.example.test": [
      { priority: 10, weight: 0, port: 5222, target: "a.example.test" },
      { priority: 5, weight: 0, port: 15222, target: "first.example.test" },
    ],
  });
  try {
    const found = await discoverServices("example.test", { nameServer: dns.nameServer });
    assert.deepEqual(found.map((c) => c.service), [
      "xmpp://first.example.test:15222",
      "xmpps://tls.example.test:5223",
      "xmpp://a.example.test:5222",
    ]);
    assert.ok(found.every((c) => c.source === "srv"));
    assert.ok(dns.queries.includes("_xmpp-client._tcp.example.test"));
    assert.ok(dns.queries.includes("_xmpps-client._tcp.example.test"));
  } finally {
    await dns.close();
  }
});

Deno.test("SRV: a domain without records falls back to the domain on port 5222", async () => {
  const dns = await startDnsServer({});
  try {
    const found = await discoverServices("nosrv.test", { nameServer: dns.nameServer });
    assert.deepEqual(found, [{ service: "xmpp://nosrv.test:5222", source: "fallback" }]);
    assert.ok(dns.queries.length >= 2, "the server was never asked");
  } finally {
    await dns.close();
  }
});

Deno.test("SRV: a target of '.' means no service, and says to set XMPP_SERVICE", async () => {
  const dns = await startDnsServer({
    "_xmpp-client._tcp.closed.test": [{ priority: 0, weight: 0, port: 0, target: "." }],
  });
  try {
    await assert.rejects(
      discoverServices("closed.test", { nameServer: dns.nameServer }),
      (err: Error) => err instanceof NoXmppServiceError && /set XMPP_SERVICE/.test(err.message),
    );
  } finally {
    await dns.close();
  }
});

Deno.test("SRV: within one priority the weighted choice follows the weights", () => {
  const records = [
    { priority: 1, weight: 1, tls: false, name: "light" },
    { priority: 1, weight: 3, tls: false, name: "heavy" },
  ];
  // point = r * 4: below 1 picks "light", from 1 on picks "heavy".
  assert.deepEqual(orderRecords(records, () => 0.1).map((r) => r.name), ["light", "heavy"]);
  assert.deepEqual(orderRecords(records, () => 0.5).map((r) => r.name), ["heavy", "light"]);
  let heavyFirst = 0;
  let seed = 1;
  const lcg = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
  for (let i = 0; i < 4000; i++) if (orderRecords(records, lcg)[0].name === "heavy") heavyFirst++;
  assert.ok(
    heavyFirst > 2800 && heavyFirst < 3200,
    `heavy first ${heavyFirst} of 4000 times, expected ~3000`,
  );
});

Deno.test({
  name: "SRV: without XMPP_SERVICE the bridge finds Prosody by DNS SRV and bridges both ways",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const w = await startWorld();
    const port = new URL(w.prosody.service).port;
    const dns = await startDnsServer({
      // A dead candidate first, at a better priority: the bridge must skip it.
      "_xmpp-client._tcp.example.test": [
        { priority: 0, weight: 0, port: freePort(), target: "127.0.0.1" },
        { priority: 10, weight: 0, port: Number(port), target: "127.0.0.1" },
      ],
    });
    try {
      // The bridge's account lives on example.test, a host that only DNS SRV leads to.
      await w.prosody.registerOn("example.test", "srvbridge", PASSWORD);
      const stopping = new AbortController();
      await deadline(
        w.startBridge(
          { XMPP_SERVICE: "", XMPP_JID: "srvbridge@example.test" },
          { dnsNameServer: dns.nameServer, signal: stopping.signal },
        ),
        20_000,
        () => {
          stopping.abort();
          return new Error("the bridge did not connect within 20 s");
        },
      );
      assert.ok(dns.queries.includes("_xmpp-client._tcp.example.test"), "no SRV query was made");
      await w.alice.sendGroupchat(w.room, "found you by SRV");
      await postsMatching(w.mm, w.channel.id, (p) => p.message === "found you by SRV", 1);
      await w.mm.postAs(w.bob.id, w.channel.id, "and back");
      await w.alice.waitForMessages(w.room, (m) => m.body?.endsWith("and back") ?? false);
    } finally {
      await dns.close();
      await w.stop();
    }
  },
});

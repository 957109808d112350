import assert from "node:assert/strict";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { xml } from "@xmpp/client-core";
import { createXmppClient, type Element, type XmppClient } from "../../src/xmpp/session/client.ts";
import { type Capabilities, capabilities, discoverCapabilities } from "../../src/xmpp/xeps/capabilities.ts";
import { enableXeps, type XepModule } from "../../src/xmpp/xeps/xep.ts";
import { xep0077 } from "../../src/xmpp/xeps/xep0077.ts";
import { NS_REGISTER, NS_REGISTER_FEATURE } from "../../src/xmpp/protocol/ns.ts";
import { discoverXeps } from "../../src/xmpp/xeps/session_xeps.ts";
import { type Prosody, type ProsodyOptions, startProsody } from "../helpers/prosody.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** Runs `fn` with the bridge logged in over STARTTLS to a fresh Prosody. */
async function withBridge(
  options: ProsodyOptions,
  fn: (client: XmppClient, prosody: Prosody, ca: string) => Promise<void>,
): Promise<void> {
  const prosody = await startProsody(options);
  try {
    await prosody.register("bridge", "pw");
    const ca = await Deno.readTextFile(prosody.caFile);
    const client = createXmppClient({
      service: prosody.service,
      domain: prosody.domain,
      username: "bridge",
      password: "pw",
      resource: "caps",
      tls: { ca },
    });
    client.reconnect.stop();
    client.on("error", () => {});
    await client.start();
    try {
      await fn(client, prosody, ca);
    } finally {
      await client.stop().catch(() => {});
    }
  } finally {
    await prosody.stop();
  }
}

/** Captures the records of the `["mmxmpp", "xmpp", "caps"]` logger while `fn` runs. */
async function capturingLogs(fn: () => Promise<void>): Promise<LogRecord[]> {
  const records: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { buffer: (record: LogRecord) => records.push(record) },
    loggers: [
      { category: ["mmxmpp", "xmpp", "caps"], lowestLevel: "debug", sinks: ["buffer"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
  });
  try {
    await fn();
  } finally {
    await reset();
  }
  return records;
}

/** A client that answers disco queries from `answers` (by `to`); an entry of null never answers. */
function fakeClient(answers: Record<string, (query: string) => Element | null>) {
  return {
    iqCaller: {
      request(iq: Element, timeout?: number): Promise<Element> {
        const to = String(iq.attrs.to);
        const ns = String(iq.getChildElements()[0].attrs.xmlns);
        const answer = answers[to]?.(ns);
        if (answer === null || answer === undefined) {
          return new Promise((_, reject) =>
            setTimeout(() => reject(Object.assign(new Error("timeout"), { name: "TimeoutError" })), timeout)
          );
        }
        if (answer.attrs.type === "error") {
          return Promise.reject(Object.assign(new Error("error"), { condition: "item-not-found" }));
        }
        return Promise.resolve(answer);
      },
    },
  };
}

function info(...children: Element[]): (ns: string) => Element {
  return (ns) => xml("iq", { type: "result" }, xml("query", { xmlns: ns }, ...children));
}

Deno.test(
  "discovery finds the server's features, the MUC service and the upload limit, and records a service that errors",
  opts,
  async () => {
    await withBridge({}, async (client, prosody) => {
      let caps: Capabilities | undefined;
      const logs = await capturingLogs(async () => {
        caps = await discoverCapabilities(client, prosody.domain);
      });
      assert.ok(caps);
      assert.ok(caps.has(NS_REGISTER), "Prosody lists jabber:iq:register in disco#info");
      assert.ok(caps.has("urn:xmpp:ping"));
      assert.ok(!caps.has("http://jabber.org/protocol/muc"), "has() is about the server itself");
      assert.deepEqual(caps.server.identities, [{ category: "server", type: "im", name: "Prosody" }]);
      assert.ok(caps.streamFeatures.has(NS_REGISTER_FEATURE), "registration is offered as a stream feature");
      assert.equal(caps.muc, prosody.mucDomain);
      assert.deepEqual(caps.upload, { jid: prosody.uploadDomain, maxFileSize: 10_485_760 });
      assert.equal(caps.serviceWith("urn:xmpp:mam:2")?.jid, prosody.mucDomain);

      const byJid = new Map(caps.services.map((s) => [s.jid, s]));
      assert.deepEqual([...byJid.keys()].sort(), [
        prosody.componentDomain,
        prosody.mucDomain,
        prosody.uploadDomain,
      ]);
      // The component is configured but not connected (Prosody answers remote-server-timeout at once): its error is
      // recorded, and the rest is still discovered.
      const component = byJid.get(prosody.componentDomain)!;
      assert.equal(component.info, undefined);
      assert.equal(component.error, "remote-server-timeout");

      const lines = logs.filter((r) => r.level === "info");
      assert.equal(lines.length, 1, "one info line");
      const summary = String(lines[0].properties.summary);
      assert.match(summary, /^localhost: \d+ features; services: /);
      assert.match(summary, /conference\.localhost \(conference\/text, MUC\)/);
      assert.match(summary, /upload\.localhost \(store\/file, upload max 10485760 bytes\)/);
      assert.match(summary, /bridge\.localhost \(no answer: remote-server-timeout\)/);

      // Discovering again on the same session logs the unchanged summary at debug only.
      const again = await capturingLogs(async () => {
        await discoverCapabilities(client, prosody.domain);
      });
      assert.deepEqual(again.map((r) => r.level), ["debug"]);
    });
  },
);

Deno.test("XEP-0077 is enabled with registrationOpen when Prosody allows registration", opts, async () => {
  await withBridge({}, async (client, prosody, ca) => {
    const { xeps } = await discoverXeps(client, {
      service: prosody.service,
      domain: prosody.domain,
      tls: { ca },
    });
    // The test Prosody also has an upload service (mod_http_file_share), which enables XEP-0363.
    assert.deepEqual(xeps.names, ["XEP-0077 In-Band Registration", "XEP-0363 HTTP File Upload"]);
    assert.equal(xeps.get(xep0077)?.registrationOpen, true);
  });
});

Deno.test(
  "with registration off Prosody still lists jabber:iq:register, but registrationOpen is false",
  opts,
  async () => {
    await withBridge({ allowRegistration: false }, async (client, prosody, ca) => {
      const { caps, xeps } = await discoverXeps(client, {
        service: prosody.service,
        domain: prosody.domain,
        tls: { ca },
      });
      // mod_register's account management (password change, <remove/>) keeps the feature in disco#info.
      assert.ok(caps.has(NS_REGISTER));
      assert.ok(!caps.streamFeatures.has(NS_REGISTER_FEATURE));
      assert.equal(xeps.get(xep0077)?.registrationOpen, false);
    });
  },
);

Deno.test("a service that never answers is recorded as timed out; discovery still completes", async () => {
  const client = fakeClient({
    "example.org": (ns) =>
      ns.endsWith("#items")
        ? xml(
          "iq",
          { type: "result" },
          xml(
            "query",
            { xmlns: ns },
            xml("item", { jid: "silent.example.org" }),
            xml("item", { jid: "muc.example.org" }),
          ),
        )
        : info(xml("feature", { var: "urn:xmpp:ping" }))(ns),
    "muc.example.org": info(xml("identity", { category: "conference", type: "text" })),
    "silent.example.org": () => null,
  });
  const caps = await discoverCapabilities(client, "example.org", { timeoutMs: 50 });
  assert.deepEqual(caps.services.map((s) => [s.jid, s.error]), [
    ["silent.example.org", "timed out"],
    ["muc.example.org", undefined],
  ]);
  assert.equal(caps.muc, "muc.example.org");
  assert.equal(caps.upload, undefined);
});

Deno.test("discovery fails with a clear message when the server itself does not answer", async () => {
  const client = fakeClient({ "example.org": () => xml("iq", { type: "error" }) });
  await assert.rejects(
    discoverCapabilities(client, "example.org", { timeoutMs: 50 }),
    /the server example.org did not answer service discovery: item-not-found/,
  );
});

Deno.test("enableXeps enables only offered modules, with typed lookup, and survives a module that throws", () => {
  const caps = capabilities("example.org", { identities: [], features: new Set(["urn:a"]), forms: [] }, []);
  const moduleA: XepModule<{ hello(): string }> = {
    id: "a",
    name: "A",
    namespaces: ["urn:a"],
    isOffered: (c) => c.has("urn:a"),
    create: () => ({ hello: () => "from a" }),
  };
  const moduleB: XepModule<{ n: number }> = {
    id: "b",
    name: "B",
    namespaces: ["urn:b"],
    isOffered: (c) => c.has("urn:b"),
    create: () => ({ n: 1 }),
  };
  const broken: XepModule<unknown> = {
    id: "broken",
    name: "Broken",
    namespaces: [],
    isOffered: () => true,
    create: () => {
      throw new Error("boom");
    },
  };
  const client = {} as XmppClient;
  const xeps = enableXeps({ client, caps, options: { service: "", domain: "example.org" } }, [
    broken,
    moduleA,
    moduleB,
  ]);
  assert.equal(xeps.get(moduleA)?.hello(), "from a");
  assert.equal(xeps.get(moduleB), undefined);
  assert.equal(xeps.get(broken), undefined);
  assert.deepEqual(xeps.names, ["A"]);
});

import assert from "node:assert/strict";
import { startBridge } from "../../src/app.ts";
import { loadConfig } from "../../src/config.ts";
import { PASSWORD } from "../helpers/harness.ts";
import { freePort } from "../helpers/ports.ts";
import { startProsody } from "../helpers/prosody.ts";
import { startTap } from "../helpers/tap.ts";
import { startMattermostStandIn } from "../mm_server/server.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "the bridge refuses to log in where only PLAIN is offered on a stream without TLS, and never sends the password",
  opts,
  async () => {
    // No STARTTLS and no SCRAM: a client could log in here only by sending its password in the clear.
    const prosody = await startProsody({ starttls: false, saslMechanisms: "plain-only" });
    const mm = await startMattermostStandIn();
    const dir = await Deno.makeTempDir({ prefix: "mmxmpp-plain-" });
    const tap = startTap(prosody.c2sPort);
    try {
      await prosody.register("bridge", PASSWORD);
      const loaded = loadConfig({
        MM_URL: mm.url,
        MM_TOKEN: mm.bot.token,
        MM_TEAM: mm.team.name,
        XMPP_JID: "bridge@localhost",
        XMPP_PASSWORD: PASSWORD,
        XMPP_SERVICE: `xmpp://127.0.0.1:${tap.port}`,
        // Even where an unencrypted stream is allowed, PLAIN is not.
        XMPP_ALLOW_UNENCRYPTED: "true",
        BRIDGE_KV_PATH: `${dir}/state.kv`,
        BRIDGE_HTTP_ADDR: `127.0.0.1:${freePort()}`,
      });
      assert.ok(loaded.ok);
      await assert.rejects(startBridge(loaded.config), (err: Error) => {
        assert.equal(
          err.message,
          `cannot connect to XMPP at xmpp://127.0.0.1:${tap.port} as bridge@localhost: ` +
            "the server offers only PLAIN authentication on an unencrypted stream; enable TLS on the server: PLAIN " +
            "is never sent unencrypted",
        );
        return true;
      });
      const sent = tap.clientText();
      // The tap saw the bridge's side of the stream, up to where authentication would start.
      assert.match(sent, /<stream:stream [^>]*to=["']localhost["']/);
      assert.doesNotMatch(sent, /<auth\b/, "no SASL authentication was attempted");
      for (const secret of [PASSWORD, btoa(`\0bridge\0${PASSWORD}`), btoa(PASSWORD)]) {
        assert.ok(!sent.includes(secret), `the password went over the wire as ${secret}`);
      }
    } finally {
      await tap.close();
      await mm.close();
      await prosody.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "without TLS the bridge does not log in at all (a stripped STARTTLS offer), unless XMPP_ALLOW_UNENCRYPTED=true",
  opts,
  async () => {
    // SCRAM is offered, STARTTLS is not: what a client sees when someone on the path strips the offer.
    const prosody = await startProsody({ starttls: false });
    const mm = await startMattermostStandIn();
    const dir = await Deno.makeTempDir({ prefix: "mmxmpp-notls-" });
    const tap = startTap(prosody.c2sPort);
    try {
      await prosody.register("bridge", PASSWORD);
      const env = (extra: Record<string, string>) => {
        const loaded = loadConfig({
          MM_URL: mm.url,
          MM_TOKEN: mm.bot.token,
          MM_TEAM: mm.team.name,
          XMPP_JID: "bridge@localhost",
          XMPP_PASSWORD: PASSWORD,
          XMPP_SERVICE: `xmpp://127.0.0.1:${tap.port}`,
          BRIDGE_KV_PATH: `${dir}/state.kv`,
          BRIDGE_HTTP_ADDR: `127.0.0.1:${freePort()}`,
          ...extra,
        });
        assert.ok(loaded.ok);
        return loaded.config;
      };
      await assert.rejects(startBridge(env({})), (err: Error) => {
        assert.match(err.message, /the server offered no TLS \(no STARTTLS\)/);
        assert.match(err.message, /XMPP_ALLOW_UNENCRYPTED=true/);
        return true;
      });
      assert.doesNotMatch(tap.clientText(), /<auth\b/, "authentication was attempted without TLS");

      const bridge = await startBridge(env({ XMPP_ALLOW_UNENCRYPTED: "true" }));
      try {
        assert.equal(bridge.xmpp.health().connected, true);
        assert.match(tap.clientText(), /<auth [^>]*mechanism=["']SCRAM-SHA-1["']/);
      } finally {
        await bridge.stop();
      }
    } finally {
      await tap.close();
      await mm.close();
      await prosody.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

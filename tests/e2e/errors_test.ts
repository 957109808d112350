/**
 * Errors that point to the fix (issue 10), shown on real sockets: a refused connection, a name under `.invalid`
 * (RFC 6761: never resolves), a TLS listener with a self-signed certificate, http and https on the wrong port, a
 * refused websocket upgrade, and Prosody's self-signed certificate without XMPP_CA_FILE. Also the command name the
 * hints use, and the state file's modes on a real Deno KV file.
 *
 * @module
 */
import assert from "node:assert/strict";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { BridgeError } from "../../src/core/errors.ts";
import { Store } from "../../src/core/store.ts";
import { call, createClient } from "../../src/mattermost/api.ts";
import { MattermostBridge } from "../../src/mattermost/connector.ts";
import { commandName } from "../../src/cli/command.ts";
import { login, LoginError } from "../../src/doctor/xmpp_login.ts";
import { XmppBridge } from "../../src/xmpp/connector.ts";
import { register } from "../../src/xmpp/xeps/xep0077.ts";
import { quietContext } from "../helpers/connector_kit.ts";
import { freePort } from "../helpers/ports.ts";
import { startProsody } from "../helpers/prosody.ts";
import { startMattermostStandIn } from "../mm_server/server.ts";
import { selfSignedCert } from "../helpers/tls.ts";

/** How the bridge's login request to `url` fails (the same call the Mattermost connector starts with). */
async function loginFailure(url: string): Promise<BridgeError> {
  const client = createClient(url, "some-token-value");
  try {
    await call(`log in to ${url}`, () => client.getMe());
  } catch (err) {
    assert.ok(err instanceof BridgeError, String(err));
    return err;
  }
  throw new Error(`logging in to ${url} succeeded`);
}

Deno.test("a Mattermost request that gets no answer names its root cause and the fix, not 'fetch failed'", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-errors-" });
  const { cert, key } = await selfSignedCert(dir);
  // TLS with the self-signed certificate; and plain HTTP.
  const tls = Deno.serve(
    { hostname: "127.0.0.1", port: 0, cert, key, onListen: () => {} },
    () => new Response(),
  );
  const plain = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => new Response());
  try {
    await t.step("connection refused, with host and port", async () => {
      const port = freePort();
      const err = await loginFailure(`http://127.0.0.1:${port}`);
      assert.equal(
        err.message,
        `cannot log in to http://127.0.0.1:${port}: connection refused (127.0.0.1:${port}); is Mattermost ` +
          "running, and are the host and port in MM_URL right?",
      );
      assert.equal(err.transient, true);
    });
    await t.step("a host name that does not resolve", async () => {
      const err = await loginFailure("http://chat.example.invalid");
      assert.match(err.message, /: DNS: no such host chat\.example\.invalid; check the host name in MM_URL$/);
      assert.equal(err.transient, true);
    });
    await t.step("a self-signed certificate: the reason, and how to trust it", async () => {
      const err = await loginFailure(`https://127.0.0.1:${tls.addr.port}`);
      assert.match(
        err.message,
        /: certificate of 127\.0\.0\.1:\d+ not accepted: unknown issuer \(self-signed, or signed by a private CA\); trust its CA: .*DENO_CERT=/,
      );
      assert.equal(err.kind, "configuration");
    });
    await t.step("https:// on a plain HTTP port, and http:// on a TLS port", async () => {
      const https = await loginFailure(`https://127.0.0.1:${plain.addr.port}`);
      assert.match(https.message, /: 127\.0\.0\.1:\d+ does not speak TLS; use http:\/\/ in MM_URL/);
      assert.equal(https.kind, "configuration");
      const http = await loginFailure(`http://127.0.0.1:${tls.addr.port}`);
      assert.match(
        http.message,
        /: 127\.0\.0\.1:\d+ does not answer plain HTTP; it may expect TLS: use https:\/\//,
      );
      assert.equal(http.kind, "configuration");
    });
  } finally {
    await tls.shutdown();
    await plain.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a Mattermost start whose websocket upgrade is refused says so, and what the proxy must do", async () => {
  const mm = await startMattermostStandIn();
  mm.refuseWebsockets(true);
  const bridge = new MattermostBridge({
    url: mm.url,
    token: mm.bot.token,
    display: { mode: "prefix", nameFormat: "{nick}" },
    helloTimeoutMs: 2_000,
    reconnect: { initialMs: 50, maxMs: 200, jitterMs: 10 },
  });
  const ctx = quietContext();
  try {
    await assert.rejects(bridge.start(ctx), (err: Error) => {
      assert.match(
        err.message,
        /^no websocket hello from ws:\/\/127\.0\.0\.1:\d+\/api\/v4\/websocket: 127\.0\.0\.1:\d+ refused the websocket upgrade \(HTTP 503\); the proxy in front of Mattermost must pass websocket upgrades/,
      );
      return true;
    });
    assert.ok(mm.refusedWebsockets > 0);
    // /healthz shows the same reason while the socket keeps trying.
    assert.match(
      bridge.health().detail,
      /^websocket closed \(\d+ failed attempt\(s\)\): .*refused the websocket upgrade \(HTTP 503\)/,
    );
  } finally {
    await bridge.stop();
    await mm.close();
  }
});

Deno.test("an XMPP start failure names the root cause and the setting: refused, DNS, untrusted certificate", async (t) => {
  const prosody = await startProsody();
  const start = async (service: string, tls?: { ca?: string }) => {
    const bridge = new XmppBridge({
      jid: "bridge@localhost",
      password: "irrelevant-password",
      service,
      resource: "test",
      mucNick: "bridge",
      nameFormat: "",
      tls,
    });
    try {
      await bridge.start({} as never);
    } catch (err) {
      assert.ok(err instanceof BridgeError, String(err));
      return err;
    } finally {
      await bridge.stop();
    }
    throw new Error(`${service}: the start succeeded`);
  };
  try {
    await t.step("connection refused", async () => {
      const port = freePort();
      const err = await start(`xmpp://127.0.0.1:${port}`);
      assert.equal(
        err.message,
        `cannot connect to XMPP at xmpp://127.0.0.1:${port} as bridge@localhost: connection refused ` +
          `(127.0.0.1:${port}); is the XMPP server running, and are the host and port in XMPP_SERVICE right?`,
      );
      assert.equal(err.transient, true);
    });
    await t.step("in-band registration (ghosts) says the same", async () => {
      const port = freePort();
      await assert.rejects(
        register({ service: `xmpp://127.0.0.1:${port}`, domain: "localhost", username: "x", password: "y" }),
        (err: Error) => {
          assert.match(
            err.message,
            new RegExp(
              `: connection refused \\(127\\.0\\.0\\.1:${port}\\); is the XMPP server running, and are the host ` +
                "and port in XMPP_SERVICE right\\?$",
            ),
          );
          return true;
        },
      );
    });
    await t.step("DNS", async () => {
      const err = await start("xmpp://chat.example.invalid:5222");
      assert.match(
        err.message,
        /: DNS: no such host chat\.example\.invalid; check the host name in XMPP_SERVICE/,
      );
      assert.equal(err.transient, true);
    });
    await t.step("Prosody's self-signed certificate without XMPP_CA_FILE", async () => {
      const err = await start(prosody.service);
      assert.match(
        err.message,
        /: TLS: the server's certificate is not accepted \(self-signed certificate, DEPTH_ZERO_SELF_SIGNED_CERT\); set XMPP_CA_FILE to the server's CA certificate \(or XMPP_TLS_INSECURE_SKIP_VERIFY=true for a test\)$/,
      );
      assert.equal(err.kind, "configuration");
      assert.equal(err.transient, false);
    });
    await t.step("xmpps:// on the STARTTLS port", async () => {
      const err = await start(prosody.service.replace("xmpp:", "xmpps:"), {
        ca: await Deno.readTextFile(prosody.caFile),
      });
      assert.match(
        err.message,
        /does not speak direct TLS \(xmpps:\/\/\); use xmpp:\/\/127\.0\.0\.1:\d+ \(STARTTLS/,
      );
    });
    await t.step(
      "the doctor's login explains the same failure the same way, naming its own flag",
      async () => {
        await assert.rejects(
          login({
            service: prosody.service,
            domain: "localhost",
            username: "bridge",
            password: "irrelevant-password",
            resource: "doctor",
          }, "XMPP_PASSWORD"),
          (err: Error) => {
            assert.ok(err instanceof LoginError);
            assert.equal(
              err.message,
              "TLS: the server's certificate is not accepted (self-signed certificate, DEPTH_ZERO_SELF_SIGNED_CERT)",
            );
            assert.equal(
              err.fix,
              "set XMPP_CA_FILE to the server's CA certificate (or --insecure-skip-verify for a test)",
            );
            return true;
          },
        );
      },
    );
  } finally {
    await prosody.stop();
  }
});

Deno.test("hints name the compiled binary by its name, and a checkout's run as deno task start", () => {
  // What a binary built by `deno compile --output mmxmpp` and installed as /usr/local/bin/mmxmpp reports.
  assert.equal(
    commandName({ execPath: "/usr/local/bin/mmxmpp", mainModule: "file:///tmp/deno-compile-mmxmpp/main.ts" }),
    "mmxmpp",
  );
  assert.equal(
    commandName({
      execPath: "/opt/bin/mmxmpp-1.2",
      mainModule: "file:///tmp/deno-compile-mmxmpp-1.2/main.ts",
    }),
    "mmxmpp-1.2",
  );
  assert.equal(
    commandName({ execPath: "/usr/bin/deno", mainModule: "file:///home/me/mmxmpp/main.ts" }),
    "deno task start",
  );
  // This test runs under deno.
  assert.equal(commandName(), "deno task start");
});

Deno.test(
  "the state file and its -wal/-shm are 0600 whatever the umask; a looser existing file is tightened",
  {
    ignore: Deno.build.os === "windows",
  },
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "mmxmpp-modes-" });
    const mode = (path: string) => (Deno.statSync(path).mode! & 0o777).toString(8);
    try {
      // Without the bridge's care, a file here would be readable by everyone.
      Deno.writeTextFileSync(`${dir}/plain`, "");
      assert.equal(mode(`${dir}/plain`), "644", "the test needs a umask that leaves files world-readable");

      const path = `${dir}/state.kv`;
      const store = await Store.open(path);
      try {
        await store.addMapping({
          channels: { mattermost: "c1", xmpp: "room@muc.example.org" },
          origin: "command",
          createdAt: Date.now(),
        });
        // While open, SQLite keeps its write-ahead log and shared memory beside the file.
        assert.deepEqual(
          [path, `${path}-wal`, `${path}-shm`].map(mode),
          ["600", "600", "600"],
        );
      } finally {
        store.close();
      }

      const old = `${dir}/old.kv`;
      const kv = await Deno.openKv(old);
      kv.close();
      Deno.chmodSync(old, 0o644);
      const warnings: string[] = [];
      await configure({
        reset: true,
        sinks: { buffer: (r: LogRecord) => r.level === "warning" && warnings.push(renderMessage(r)) },
        loggers: [
          { category: ["mmxmpp"], lowestLevel: "debug", sinks: ["buffer"] },
          { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
        ],
      });
      try {
        const reopened = await Store.open(old);
        try {
          assert.equal(mode(old), "600");
          assert.equal(mode(`${old}-wal`), "600");
        } finally {
          reopened.close();
        }
      } finally {
        await reset();
      }
      assert.deepEqual(warnings, [
        `${old} was open to other users (mode 0644); it can hold ghost passwords: changed it to 0600`,
      ]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

/** A log record's message with its values in place. */
function renderMessage(r: LogRecord): string {
  return r.message.map((part) => String(part)).join("");
}

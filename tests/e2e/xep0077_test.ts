import assert from "node:assert/strict";
import {
  createStreamClient,
  createXmppClient,
  type Element,
  type XmppClient,
} from "../../src/xmpp/session/client.ts";
import {
  cancelRegistration,
  changePassword,
  getRegistrationFields,
  register,
  RegistrationError,
  type RegistrationFailureReason,
  type RegistrationServer,
  xep0077,
  type Xep0077Api,
} from "../../src/xmpp/xeps/xep0077.ts";
import { discoverXeps } from "../../src/xmpp/xeps/session_xeps.ts";
import { NS_REGISTER, NS_REGISTER_FEATURE } from "../../src/xmpp/protocol/ns.ts";
import { type Prosody, type ProsodyOptions, startProsody } from "../helpers/prosody.ts";
import { freePort } from "../helpers/ports.ts";
import { fileProsody } from "../helpers/harness.ts";
import { CaTrust } from "../../src/xmpp/session/client.ts";
import { xep0077Registrar } from "../../src/xmpp/intents/ibr_ghosts.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** The Prosody of the tests that need no particular options; each registers names of its own. */
const shared = fileProsody("xep0077");

/**
 * Runs `fn` against a Prosody: the file's for default options, else a fresh one; `server` is where to register, with
 * the test certificate trusted.
 */
async function withProsody(
  options: ProsodyOptions,
  fn: (prosody: Prosody, server: RegistrationServer) => Promise<void>,
): Promise<void> {
  const own = Object.keys(options).length > 0;
  const prosody = own ? await startProsody(options) : await shared.get();
  try {
    const ca = await Deno.readTextFile(prosody.caFile);
    await fn(prosody, { service: prosody.service, domain: prosody.domain, tls: { ca } });
  } finally {
    if (own) await prosody.stop();
  }
}

/** Logs in over STARTTLS with the bridge's own client; the caller stops it. */
async function login(server: RegistrationServer, username: string, password: string): Promise<XmppClient> {
  const client = createXmppClient({ ...server, username, password, resource: "test" });
  client.reconnect.stop();
  client.on("error", () => {});
  try {
    await client.start();
  } catch (err) {
    await client.stop().catch(() => {});
    throw err;
  }
  return client;
}

/** The SASL condition a login fails with, or "ok" when it succeeds. */
async function loginOutcome(server: RegistrationServer, username: string, password: string): Promise<string> {
  try {
    const client = await login(server, username, password);
    await client.stop();
    return "ok";
  } catch (err) {
    return (err as { condition?: string }).condition ?? String(err);
  }
}

/** Asserts that `promise` rejects with a RegistrationError of `reason`, and returns it. */
async function rejectsWith(
  promise: Promise<unknown>,
  reason: RegistrationFailureReason,
): Promise<RegistrationError> {
  const err = await promise.then(
    () => assert.fail(`expected a ${reason} RegistrationError, but it succeeded`),
    (err) => err,
  );
  assert.ok(err instanceof RegistrationError, `expected a RegistrationError, got ${err}`);
  assert.equal(err.reason, reason, err.message);
  return err;
}

Deno.test("a stream client negotiates STARTTLS and stops before authentication", opts, async () => {
  await withProsody({}, async (_prosody, server) => {
    const stream = createStreamClient(server);
    const sent: string[] = [];
    stream.on("send", (el: Element) => sent.push(el.name));
    await stream.start();
    try {
      assert.ok(stream.isSecure(), "STARTTLS was negotiated");
      assert.ok(stream.negotiated.tlsProtocol?.startsWith("TLS"), stream.negotiated.tlsProtocol);
      assert.ok(stream.negotiated.streamFeatures.has("urn:ietf:params:xml:ns:xmpp-sasl"));
      assert.ok(stream.negotiated.streamFeatures.has(NS_REGISTER_FEATURE));
      assert.deepEqual(sent, ["starttls"], "nothing but STARTTLS was sent: no SASL <auth>");
    } finally {
      await stream.stop();
    }
  });
});

Deno.test("registration fields: Prosody's instructions, legacy fields and data form", opts, async () => {
  await withProsody({}, async (_prosody, server) => {
    const { instructions, fields, form } = await getRegistrationFields(server);
    assert.equal(instructions, "Choose a username and password for use with this service.");
    assert.deepEqual(fields, ["username", "password"]);
    assert.ok(form, "Prosody sends an XEP-0004 form");
    assert.equal(form.type, "form");
    assert.equal(form.formType, NS_REGISTER);
    assert.equal(form.title, "Creating a new account");
    assert.deepEqual(
      form.fields.map((f) => ({ var: f.var, type: f.type, label: f.label, required: f.required })),
      [
        { var: "FORM_TYPE", type: "hidden", label: undefined, required: false },
        { var: "username", type: "text-single", label: "Username", required: true },
        { var: "password", type: "text-private", label: "Password", required: true },
      ],
    );
  });
});

Deno.test(
  "register creates an account that logs in; registering the name again is 'taken'",
  opts,
  async () => {
    await withProsody({}, async (_prosody, server) => {
      const { jid } = await register({ ...server, username: "mm_alice", password: "first-pass" });
      assert.equal(jid, "mm_alice@localhost");
      assert.equal(await loginOutcome(server, "mm_alice", "first-pass"), "ok");

      const err = await rejectsWith(
        register({ ...server, username: "mm_alice", password: "other" }),
        "taken",
      );
      assert.equal(err.condition, "conflict");
      assert.equal(err.transient, false);
      assert.match(err.message, /username is taken.*choose another/);
      assert.equal(
        await loginOutcome(server, "mm_alice", "first-pass"),
        "ok",
        "the first password still holds",
      );
    });
  },
);

Deno.test("with registration off, fields and register fail as 'disabled'", opts, async () => {
  await withProsody({ allowRegistration: false }, async (_prosody, server) => {
    const fields = await rejectsWith(getRegistrationFields(server), "disabled");
    assert.equal(fields.condition, "service-unavailable");
    const err = await rejectsWith(register({ ...server, username: "mm_bob", password: "pw" }), "disabled");
    assert.equal(err.condition, "service-unavailable");
    assert.match(err.message, /does not allow in-band registration.*allow_registration = true/);
    assert.equal(await loginOutcome(server, "mm_bob", "pw"), "not-authorized", "no account was created");
  });
});

Deno.test(
  "a registration over the server's rate limit is 'rate-limited' with a retry hint",
  opts,
  async () => {
    await withProsody({ registrationThrottleSeconds: 30 }, async (_prosody, server) => {
      await register({ ...server, username: "mm_first", password: "pw-1" });
      const err = await rejectsWith(
        register({ ...server, username: "mm_second", password: "pw-2" }),
        "rate-limited",
      );
      // Prosody's mod_register_limits answers <policy-violation/> of type "wait", not <resource-constraint/>.
      assert.equal(err.condition, "policy-violation");
      assert.equal(err.serverText, "Too many registrations from this IP address recently");
      assert.equal(err.transient, true);
      assert.equal(err.retryAfterMs, 60_000);
      assert.match(err.message, /rate-limits registrations.*wait and retry/);
      assert.equal(await loginOutcome(server, "mm_second", "pw-2"), "not-authorized");
    });
  },
);

Deno.test(
  "changePassword from the account's session: the new password logs in, the old one no longer",
  opts,
  async () => {
    await withProsody({}, async (_prosody, server) => {
      await register({ ...server, username: "mm_carol", password: "old-pass" });
      const session = await login(server, "mm_carol", "old-pass");
      try {
        await changePassword(session, "new-pass");
      } finally {
        await session.stop().catch(() => {});
      }
      assert.equal(await loginOutcome(server, "mm_carol", "new-pass"), "ok");
      assert.equal(await loginOutcome(server, "mm_carol", "old-pass"), "not-authorized");
    });
  },
);

Deno.test("cancelRegistration from the account's session deletes it: login then fails", opts, async () => {
  await withProsody({}, async (_prosody, server) => {
    await register({ ...server, username: "mm_dave", password: "pw" });
    const session = await login(server, "mm_dave", "pw");
    try {
      await cancelRegistration(session);
    } finally {
      await session.stop().catch(() => {});
    }
    assert.equal(await loginOutcome(server, "mm_dave", "pw"), "not-authorized");
  });
});

Deno.test(
  "cancelRegistration and changePassword refuse the bridge's own session and send nothing",
  opts,
  async () => {
    await withProsody({}, async (prosody, server) => {
      await prosody.register("bridge", "bridge-pass");
      const bridge = await login(server, "bridge", "bridge-pass");
      const sent: string[] = [];
      bridge.on("send", (el: Element) => {
        if (el.getChild("query", NS_REGISTER)) sent.push(el.toString());
      });
      let api: Xep0077Api | undefined;
      try {
        // Passed to the function (JIDs compare case-insensitively)…
        await rejectsWith(cancelRegistration(bridge, { protectedJids: ["Bridge@LocalHost"] }), "protected");
        // …or protected by enabling the module on the bridge's session, which then guards every later call.
        const { xeps } = await discoverXeps(bridge, {
          service: server.service,
          domain: server.domain,
          tls: server.tls,
        });
        api = xeps.get(xep0077);
        assert.ok(api, "XEP-0077 is enabled");
        const err = await rejectsWith(api.cancelRegistration(bridge), "protected");
        assert.match(err.message, /refusing to delete bridge@localhost.*nothing was sent/);
        await rejectsWith(cancelRegistration(bridge), "protected");
        await rejectsWith(changePassword(bridge, "hijacked"), "protected");
        await rejectsWith(api.changePassword(bridge, "hijacked"), "protected");
        assert.deepEqual(sent, [], "no jabber:iq:register IQ went out on the bridge's session");
      } finally {
        await bridge.stop().catch(() => {});
      }
      assert.equal(
        await loginOutcome(server, "bridge", "bridge-pass"),
        "ok",
        "the bridge's account is intact",
      );

      // The module's API still works on other accounts' own sessions, after the bridge's session is gone.
      assert.ok(api);
      await api.register("mm_erin", "pw");
      const ghost = await login(server, "mm_erin", "pw");
      try {
        await api.cancelRegistration(ghost);
      } finally {
        await ghost.stop().catch(() => {});
      }
      assert.equal(await loginOutcome(server, "mm_erin", "pw"), "not-authorized");
    });
  },
);

Deno.test("register against a closed port fails as 'unreachable' and transient", opts, async () => {
  const server = { service: `xmpp://127.0.0.1:${freePort()}`, domain: "localhost", timeoutMs: 5_000 };
  const err = await rejectsWith(register({ ...server, username: "x", password: "y" }), "unreachable");
  assert.equal(err.transient, true);
  assert.match(err.message, /connection refused/);
});

Deno.test(
  "the ghosts' registrar trusts XMPP_CA_FILE alone when it verifies the server, as the ghosts' logins do",
  opts,
  async () => {
    await withProsody({}, async (_prosody, server) => {
      const trust = new CaTrust(server.tls);
      const registrar = xep0077Registrar(server, "bridge@localhost", trust);
      assert.deepEqual(await registrar.register("mm_trusty", "pw"), { ok: true });
      assert.equal(trust.verifiesAlone, true, "registered over TLS trusting the CA file alone");
      assert.equal(await loginOutcome(server, "mm_trusty", "pw"), "ok");
    });
  },
);

shared.stopAfterAll();

/**
 * The doctor's XMPP steps: TCP, TLS, SASL, bind, disco#info, XEP-0077, MUC round trip, a direct message, whether
 * rooms exist, and the XEP-0114 component handshake. Later steps need earlier ones and are skipped when those failed.
 *
 * @module
 */
import { xml } from "@xmpp/client-core";
import type net from "node:net";
import type { Element } from "../xmpp/session/client.ts";
import { discoInfo } from "../xmpp/protocol/disco.ts";
import type { DoctorSettings } from "./options.ts";
import { StepFailure, type StepSpec } from "./report.ts";
import { certificateSummary, connectTcp, endpointOf, probeTls } from "./tls_probe.ts";
import { type Login, login, LoginError } from "./xmpp_login.ts";
import { mucRoundTrip, probeRoom, roomLabel } from "./muc_probe.ts";
import { errorCondition } from "../xmpp/protocol/stanza.ts";
import { xep0077Step } from "./xep0077_step.ts";

import { componentStep } from "./component_step.ts";
import { NS_RECEIPTS, NS_REGISTER_FEATURE } from "../xmpp/protocol/ns.ts";

/** How long a direct message may take to bounce. */
const DM_BOUNCE_WAIT_MS = 2_000;

/** XMPP steps, sharing one session; call `close` when done, whatever happened. */
export interface XmppSteps {
  steps: StepSpec[];
  close(): Promise<void>;
}

/**
 * Builds the XMPP steps for `s`.
 *
 * @example
 * ```ts
 * const xmpp = xmppSteps(settings);
 * try { for (const step of xmpp.steps) await checkup.run(step); } finally { await xmpp.close(); }
 * ```
 */
export function xmppSteps(s: DoctorSettings): XmppSteps {
  const x = s.config.xmpp;
  const ep = endpointOf(x.service);
  const tlsOpts = {
    ca: x.ca,
    insecureSkipVerify: x.tlsInsecureSkipVerify,
    allowUnencrypted: x.allowUnencrypted,
  };
  const username = x.jid.split("@")[0];
  const trust = x.tlsInsecureSkipVerify
    ? "NOT checked (insecure skip verify)"
    : x.caFile
    ? "trusted (system CAs + XMPP_CA_FILE)"
    : "trusted";
  let socket: net.Socket | undefined;
  let session: Login | undefined;
  let loginError: LoginError | undefined;

  const steps: StepSpec[] = [
    {
      id: "xmpp.tcp",
      name: "XMPP TCP connect",
      fix: "check XMPP_SERVICE (or --server)",
      run: async () => {
        socket = await connectTcp(ep, "XMPP_SERVICE (or --server)");
        return { detail: `${ep.host}:${ep.port} (${x.service})` };
      },
    },
    {
      id: "xmpp.tls",
      name: "XMPP TLS",
      fix: "check the XMPP server's TLS configuration",
      needs: ["xmpp.tcp"],
      run: async () => {
        const report = await probeTls(socket!, ep, x.domain, tlsOpts);
        socket = undefined;
        const c = report.certificate;
        if (report.problem) throw new StepFailure(report.problem.message, report.problem.fix);
        const detail = `${report.protocol} via ${report.via}; ${certificateSummary(c)}; ` +
          (report.unchecked ? `NOT checked: ${report.unchecked}` : trust);
        return { detail, items: s.verbose ? [`SHA-256 fingerprint ${c.fingerprint256}`] : undefined };
      },
    },
    {
      id: "xmpp.sasl",
      name: "XMPP SASL",
      fix: "check XMPP_JID and XMPP_PASSWORD",
      needs: ["xmpp.tls"],
      run: async () => {
        try {
          session = await login(
            {
              service: x.service,
              domain: x.domain,
              username,
              password: x.password,
              resource: s.resource,
              tls: tlsOpts,
            },
            "XMPP_PASSWORD (or XMPP_PASSWORD_FILE, --password)",
          );
        } catch (err) {
          if (!(err instanceof LoginError) || err.phase !== "bind") throw err;
          loginError = err;
          return { detail: `${x.jid} authenticated (the resource binding failed)` };
        }
        return { detail: `${session.mechanism} accepted for ${x.jid}`, ms: session.saslMs };
      },
    },
    {
      id: "xmpp.bind",
      name: "XMPP bind",
      fix: "check the server's log",
      needs: ["xmpp.sasl"],
      run: () => {
        if (!session) return Promise.reject(loginError);
        return Promise.resolve({ detail: `bound ${session.jid}`, ms: session.bindMs });
      },
    },
    {
      id: "xmpp.disco",
      name: "XMPP disco#info",
      fix: "the server must answer service discovery (XEP-0030); check its log",
      needs: ["xmpp.bind"],
      run: async () => {
        const info = await discoInfo(session!.client, x.domain);
        const identities = info.identities.map((i) => `${i.category}/${i.type}`).join(", ") || "none";
        // Prosody lists jabber:iq:register even with registration off; the stream feature says whether it is open.
        const registration = session!.client.negotiated.streamFeatures.has(NS_REGISTER_FEATURE)
          ? "open"
          : "closed";
        return {
          detail: `${info.features.size} features on ${x.domain} (identities: ${identities}; ` +
            `registration of new accounts ${registration})`,
          items: s.verbose ? [...info.features].sort() : undefined,
        };
      },
    },
    xep0077Step(s, tlsOpts),
    {
      id: "xmpp.muc",
      name: "XMPP MUC round trip",
      fix: "check --test-room and the room's settings",
      needs: ["xmpp.bind"],
      skip: s.testMuc ? undefined : "not requested (--test-muc)",
      run: async () => {
        const room = await probeRoom(session!.client, x.domain, s.testRoom, s.mucService);
        const trip = await mucRoundTrip(
          session!.client,
          room,
          `${x.mucNick}-doctor`,
          "mmxmpp doctor: MUC round-trip test, please ignore",
        );
        return {
          detail:
            `joined ${roomLabel(room, s, trip.destroyed)} as ${trip.nick} in ${
              Math.round(trip.joinMs)
            } ms; ` +
            `own message reflected after ${Math.round(trip.roundTripMs)} ms`,
        };
      },
    },
    {
      id: "xmpp.dm",
      name: "XMPP direct message",
      fix: "check the --test-dm JID",
      needs: ["xmpp.bind"],
      skip: s.testDm ? undefined : "not requested (--test-dm JID)",
      run: () => directMessage(session!, s.testDm!),
    },
    {
      id: "xmpp.room_exists",
      name: "XMPP room exists",
      fix: "check the room JID",
      needs: ["xmpp.bind"],
      skip: s.testRoomExists ? undefined : "not requested (--test-room-exists ROOM)",
      run: () => roomExists(session!, s.testRoomExists!),
    },
    componentStep(s),
  ];

  return {
    steps,
    async close() {
      socket?.destroy();
      await session?.client.stop().catch(() => {});
    },
  };
}

/** Sends a chat message to `to`; passes unless an error comes back within a short wait (or a receipt ends it). */
async function directMessage(session: Login, to: string): Promise<{ detail: string }> {
  const id = `mmxmpp-doctor-${crypto.randomUUID()}`;
  const bare = to.split("/")[0].toLowerCase();
  let onStanza: (stanza: Element) => void = () => {};
  const answer = new Promise<string>((resolve) => {
    onStanza = (stanza) => {
      if (!stanza.is("message") || String(stanza.attrs.from ?? "").split("/")[0].toLowerCase() !== bare) {
        return;
      }
      if (stanza.attrs.type === "error" && stanza.attrs.id === id) {
        resolve(`error:${errorCondition(stanza) ?? "error"}`);
      } else if (stanza.getChild("received", NS_RECEIPTS)?.attrs.id === id) resolve("receipt");
    };
  });
  session.client.on("stanza", onStanza as never);
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await session.client.send(
      xml(
        "message",
        { to, type: "chat", id },
        xml("body", {}, "mmxmpp doctor: direct message test, please ignore"),
        xml("request", { xmlns: NS_RECEIPTS }),
      ),
    );
    const outcome = await Promise.race([
      answer,
      new Promise<string>((resolve) => timer = setTimeout(() => resolve("quiet"), DM_BOUNCE_WAIT_MS)),
    ]);
    if (outcome.startsWith("error:")) {
      const cond = outcome.slice(6);
      throw new StepFailure(
        `the message to ${to} bounced (${cond})`,
        cond === "service-unavailable" || cond === "item-not-found"
          ? `check that ${bare} exists`
          : cond === "remote-server-not-found" || cond === "remote-server-timeout"
          ? `the server cannot reach ${bare.split("@")[1]}: check server-to-server federation`
          : `check that ${bare} accepts messages from ${session.jid.split("/")[0]}`,
      );
    }
    return {
      detail: outcome === "receipt"
        ? `sent to ${to}; delivery receipt received`
        : `sent to ${to}; no error within ${DM_BOUNCE_WAIT_MS / 1000} s`,
    };
  } finally {
    clearTimeout(timer);
    session.client.removeListener("stanza", onStanza as never);
  }
}

/** Asserts that `room` exists and that a random room at the same service does not. */
async function roomExists(session: Login, room: string): Promise<{ detail: string }> {
  const service = room.split("@")[1];
  const info = await discoInfo(session.client, room).catch((err) => {
    const cond = (err as { condition?: string }).condition;
    throw cond === "item-not-found"
      ? new StepFailure(`${room} does not exist (item-not-found)`, `create ${room}, or check the room JID`)
      : cond === "remote-server-not-found"
      ? new StepFailure(
        `${service} is not a reachable service (remote-server-not-found)`,
        "check the room JID",
      )
      : new StepFailure(`disco#info on ${room} failed: ${cond ?? err}`, "check the room JID");
  });
  if (!info.identities.some((i) => i.category === "conference")) {
    throw new StepFailure(`${room} answers but is not a chat room`, "check the room JID");
  }
  const random = `mmxmpp-doctor-${crypto.randomUUID().slice(0, 8)}@${service}`;
  const ghost = await discoInfo(session.client, random).then(
    () => undefined,
    (err) => (err as { condition?: string }).condition ?? "error",
  );
  if (ghost === undefined) {
    throw new StepFailure(
      `${service} claims the random room ${random} exists, so an existence check proves nothing there`,
      "/xmppbridge map cannot tell a typo from a real room on this service; check room JIDs by hand",
    );
  }
  if (ghost !== "item-not-found") {
    throw new StepFailure(`disco#info on the random room ${random} answered ${ghost}, not item-not-found`);
  }
  return { detail: `${room} exists; the random room ${random} does not (item-not-found)` };
}

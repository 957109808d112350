/**
 * The doctor's component step: with `BRIDGE_GHOST_MODE=component`, connect to `XMPP_COMPONENT_SERVICE` as
 * `XMPP_COMPONENT_JID` and perform the XEP-0114 handshake with `XMPP_COMPONENT_SECRET`, through the bridge's own
 * component connection (src/xmpp/intents/component.ts), then disconnect.
 *
 * @module
 */
import { XmppComponent } from "../xmpp/intents/component.ts";
import { deadline } from "../core/deadline.ts";
import { explainComponentFailure } from "../xmpp/explain.ts";
import type { DoctorSettings } from "./options.ts";
import { StepFailure, type StepSpec } from "./report.ts";

const TIMEOUT_MS = 10_000;

/**
 * The step; skipped (with the reason) unless the ghost mode is `component`.
 *
 * @example
 * ```ts
 * await checkup.run(componentStep(settings));
 * ```
 */
export function componentStep(s: DoctorSettings): StepSpec {
  const { mode, component } = s.config.ghosts;
  return {
    id: "xmpp.component",
    name: "XMPP component handshake",
    fix: "check XMPP_COMPONENT_SERVICE, XMPP_COMPONENT_JID and XMPP_COMPONENT_SECRET against the server's " +
      "Component section",
    skip: mode !== "component" || !component
      ? `BRIDGE_GHOST_MODE is ${mode}, not component: the bridge connects no component`
      : undefined,
    run: async () => {
      const { jid, secret, service } = component!;
      const connection = new XmppComponent({ service, domain: jid, secret });
      try {
        await deadline(
          connection.start(),
          TIMEOUT_MS,
          () => new StepFailure(`no answer from ${service} within ${TIMEOUT_MS / 1000} s`, portFix(service)),
        );
      } catch (err) {
        const cause = (err as { cause?: { condition?: string } }).cause;
        // Prosody checks the secret before it looks for another connection: a conflict means the secret is right.
        if (cause?.condition === "conflict") {
          return {
            detail:
              `${jid} at ${service}: the secret is accepted, but another connection (the running bridge?) ` +
              "holds the component, so the server refused a second one (conflict)",
          };
        }
        throw explain(err, jid, service);
      } finally {
        await connection.stop();
      }
      return { detail: `${jid} accepted by ${service} (XEP-0114 handshake with XMPP_COMPONENT_SECRET)` };
    },
  };
}

/** The component's failure, written for the person who configured it; the secret is never part of it. */
function explain(err: unknown, jid: string, service: string): StepFailure {
  if (err instanceof StepFailure) return err;
  const f = explainComponentFailure(err, { jid, service });
  return new StepFailure(f.reason, f.fix);
}

function portFix(service: string): string {
  return `check XMPP_COMPONENT_SERVICE (${service}): is the component port (5347) open on loopback? ` +
    "(Prosody: component_ports and component_interfaces; the default service is port 5347 on XMPP_SERVICE's host)";
}

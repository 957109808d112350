/**
 * The doctor's live XEP-0077 step: register a temporary account on a fresh stream, log in as it, join the test room
 * and send a message, cancel the registration from the account's own session, and prove the account is gone
 * because logging in as it now fails.
 *
 * @module
 */
import type { TlsOptions } from "../xmpp/session/client.ts";
import { cancelRegistration, register, RegistrationError } from "../xmpp/xeps/xep0077.ts";
import { errorMessage } from "../core/errors.ts";
import type { DoctorSettings } from "./options.ts";
import { StepFailure, type StepSpec } from "./report.ts";
import { type Login, login, LoginError } from "./xmpp_login.ts";
import { mucRoundTrip, probeRoom, roomLabel } from "./muc_probe.ts";

/**
 * The step. It needs only the server and the test room, but runs after the bridge's own login so that a wrong
 * password or certificate is reported once, there.
 *
 * @example
 * ```ts
 * await checkup.run(xep0077Step(settings, { ca }));
 * ```
 */
export function xep0077Step(s: DoctorSettings, tls: TlsOptions): StepSpec {
  const x = s.config.xmpp;
  return {
    id: "xmpp.xep0077",
    name: "XMPP XEP-0077 live",
    fix: "check the server's in-band registration settings and its log",
    needs: ["xmpp.bind"],
    skip: s.testXep0077 ? undefined : "not requested (--test-xep0077)",
    run: async () => {
      const username = `mmxmpp-doctor-${crypto.randomUUID().slice(0, 8)}`;
      const password = randomHex(24);
      const jid = `${username}@${x.domain}`;
      const account = { service: x.service, domain: x.domain, username, password, resource: "doctor", tls };
      const signIn = () => login(account, "the temporary account's password");

      await register({ service: x.service, domain: x.domain, username, password, tls }).catch((err) => {
        throw new StepFailure(errorMessage(err), registrationFix(err));
      });
      let session: Login | undefined;
      let cancelled = false;
      try {
        session = await signIn().catch((err) => {
          throw new StepFailure(`${jid} was registered but cannot log in: ${errorMessage(err)}`);
        });
        const room = await probeRoom(session.client, x.domain, s.testRoom, s.mucService);
        const trip = await mucRoundTrip(
          session.client,
          room,
          username,
          "mmxmpp doctor: XEP-0077 test account, please ignore",
        );
        await cancelRegistration(session.client).catch((err) => {
          throw new StepFailure(`cancelling the registration of ${jid} failed: ${errorMessage(err)}`);
        });
        cancelled = true;
        await session.client.stop().catch(() => {});
        session = undefined;
        const gone = await signIn().then(
          async (again) => {
            await again.client.stop().catch(() => {});
            return undefined;
          },
          (err) =>
            err instanceof LoginError && err.condition === "not-authorized"
              ? err.condition
              : errorMessage(err),
        );
        if (gone === undefined) {
          throw new StepFailure(
            `${jid} can still log in after cancelling its registration`,
            `the server ignored <remove/>: delete ${jid} by hand; ibr ghosts would not be cleaned up either`,
          );
        }
        if (gone !== "not-authorized") {
          throw new StepFailure(`logging in as the cancelled ${jid} failed, but not as expected: ${gone}`);
        }
        const rtt = Math.round(trip.roundTripMs);
        return {
          detail:
            `registered ${jid}, logged in, joined ${roomLabel(room, s, trip.destroyed)}, message reflected ` +
            `after ${rtt} ms; cancelled the registration; login now fails (not-authorized)`,
        };
      } catch (err) {
        if (cancelled) throw err;
        throw new StepFailure(
          `${errorMessage(err)}; ${await cleanUp(session, signIn, jid)}`,
          (err as StepFailure).fix,
        );
      } finally {
        await session?.client.stop().catch(() => {});
      }
    },
  };
}

/** Cancels the temporary account after a failure; says whether that worked. */
async function cleanUp(
  session: Login | undefined,
  signIn: () => Promise<Login>,
  jid: string,
): Promise<string> {
  try {
    const own = session ?? await signIn();
    await cancelRegistration(own.client);
    if (!session) await own.client.stop().catch(() => {});
    return `the temporary account ${jid} was removed`;
  } catch {
    return `the temporary account ${jid} could not be removed: delete it by hand`;
  }
}

function randomHex(bytes: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0"))
    .join("");
}

function registrationFix(err: unknown): string | undefined {
  switch (err instanceof RegistrationError ? err.reason : undefined) {
    case "disabled":
      return "enable in-band registration (Prosody: allow_registration = true) for ibr ghosts, or drop --test-xep0077";
    case "rate-limited":
      return "the server rate-limits registrations (Prosody: min_seconds_between_registrations): wait and run again";
    case "taken":
      return "the random name was taken: run the doctor again";
    case "unreachable":
      return "check XMPP_SERVICE and the TLS settings";
  }
  return undefined;
}

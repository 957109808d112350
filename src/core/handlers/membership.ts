/**
 * The `membership` kind: a remote user's stand-in joins or leaves the target channel where the target connector can
 * ({@link MembershipCapable}), once and without retries (a later join or leave supersedes it); elsewhere left out.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { isMembershipCapable } from "../bridge.ts";
import { errorMessage } from "../errors.ts";
import type { MembershipDelivery } from "../message.ts";
import { type HandlerContext, unsupported } from "./context.ts";

const log = getLogger(["mmxmpp", "bus"]);

/** Delivers a join or leave to one target, best effort. Always true: nothing waits on a membership change. */
export async function handleMembership(d: MembershipDelivery, ctx: HandlerContext): Promise<boolean> {
  const bridge = ctx.bridge(d.target);
  if (!isMembershipCapable(bridge)) return unsupported(d, ctx);
  try {
    await bridge.sendMembership(d);
  } catch (err) {
    log.info("Could not follow a {state} in {target} {channel}: {error}", {
      state: d.event.present ? "join" : "leave",
      target: d.target,
      channel: d.targetChannel,
      error: errorMessage(err),
    });
  }
  return true;
}

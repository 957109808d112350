/**
 * The `typing` kind: shown where the target connector can, once and without retries (a typing state retried later
 * is stale); elsewhere left out.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { isTypingCapable } from "../bridge.ts";
import { errorMessage } from "../errors.ts";
import type { BridgeTyping } from "../events.ts";
import type { DirectionalEvent } from "../message.ts";
import { type HandlerContext, unsupported } from "./context.ts";

const log = getLogger(["mmxmpp", "bus"]);

/** Delivers a typing state to one target, best effort. Always true: a typing state is never worth waiting for. */
export async function handleTyping(d: DirectionalEvent<BridgeTyping>, ctx: HandlerContext): Promise<boolean> {
  const bridge = ctx.bridge(d.target);
  if (!isTypingCapable(bridge) || !bridge.portalCapabilities(d.targetChannel).typing) {
    return unsupported(d, ctx);
  }
  try {
    await bridge.sendTyping(d);
  } catch (err) {
    log.debug("Could not show typing in {target} {channel}: {error}", {
      target: d.target,
      channel: d.targetChannel,
      error: errorMessage(err),
    });
  }
  return true;
}

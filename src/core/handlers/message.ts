/**
 * The `message` kind: delivered as it is, with retries, and recorded in the id map so that later events can point
 * at it and its echo is recognised.
 *
 * @module
 */
import type { BridgeMessage } from "../events.ts";
import type { DirectionalEvent } from "../message.ts";
import type { HandlerContext } from "./context.ts";

/** Delivers a message to one target. True when it landed or was given up on; false when the bus stopped. */
export function handleMessage(d: DirectionalEvent<BridgeMessage>, ctx: HandlerContext): Promise<boolean> {
  const { event, ...route } = d;
  return ctx.deliverMessage({ ...route, message: event });
}

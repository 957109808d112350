/**
 * The `message` kind: delivered as it is, with retries, and recorded in the id map so that later events can point
 * at it and its echo is recognised.
 *
 * @module
 */
import type { Work } from "../delivery_queue.ts";
import type { DirectionalMessage } from "../message.ts";
import type { HandlerContext } from "./context.ts";

/**
 * Delivers a message to one target. `done`: true when it landed or was given up on, false when the bus stopped;
 * `written` once it is on the wire.
 */
export function handleMessage(dm: DirectionalMessage, ctx: HandlerContext): Work {
  return ctx.deliverMessage(dm);
}

/**
 * The `message` kind: delivered as it is, with retries, and recorded in the id map so that later events can point
 * at it and its echo is recognised.
 *
 * A reply finds its parent on the target network at its turn (a reply is a barrier in the delivery queue, so a
 * parent delivered just before it is recorded by then): the connector gets the parent's ref and points at it the
 * way its network does. A parent that never got there is quoted in the text instead, so the answer keeps its
 * context.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { Work } from "../delivery_queue.ts";
import { errorMessage } from "../errors.ts";
import type { DirectionalMessage } from "../message.ts";
import type { HandlerContext } from "./context.ts";

const log = getLogger(["mmxmpp", "bus"]);

/**
 * Delivers a message to one target. `done`: true when it landed or was given up on, false when the bus stopped;
 * `written` once it is on the wire.
 */
export function handleMessage(dm: DirectionalMessage, ctx: HandlerContext): Work {
  if (!dm.message.replyTo) return ctx.deliverMessage(dm);
  const work = withParent(dm, ctx).then(({ as, foundBy }) => {
    const delivery = ctx.deliverMessage(dm, as);
    // Done only once its thread is named: the next message of the thread (a barrier too) must find it.
    const named = (ok: boolean) => nameThread(dm, foundBy, ctx).then(() => ok);
    return { ...delivery, done: delivery.done.then(named) };
  });
  return { written: work.then((w) => w.written), done: work.then((w) => w.done) };
}

/**
 * Makes the thread `dm` names on its source network, when the id map does not know it yet (a thread the bridge
 * never saw begin, such as an XMPP client's own `<thread>` id), another name of the message it answers (found on
 * the target by the id `foundBy`), else of `dm` itself, which then stands for the thread's root: the thread's later
 * messages follow it there. Best effort.
 */
async function nameThread(
  dm: DirectionalMessage,
  foundBy: string | undefined,
  ctx: HandlerContext,
): Promise<void> {
  const { thread } = dm.message.replyTo!;
  const { network, channel } = dm.message.portal;
  const known = foundBy ?? dm.message.ids[0];
  if (!thread || !known || thread === known) return;
  try {
    await ctx.recorded();
    if (await ctx.store.findLink(network, channel, thread)) return;
    await ctx.store.addAlias(network, channel, known, thread);
  } catch (err) {
    log.warn("Could not record where a thread is in {network} {channel}: {error}", {
      network,
      channel,
      error: errorMessage(err),
    });
  }
}

/**
 * `dm` with its parent on the target network (`as`), looked up by the id it answers, its other names, then its
 * thread, and the id it was found by; else `dm` as it is, which its connector shows after a quote of the parent it
 * came with.
 */
async function withParent(
  dm: DirectionalMessage,
  ctx: HandlerContext,
): Promise<{ as: DirectionalMessage; foundBy?: string }> {
  const reply = dm.message.replyTo!;
  const { network, channel } = dm.message.portal;
  const names = [reply.targetId, ...(reply.otherIds ?? []), reply.thread].filter((x): x is string => !!x);
  const find = async () => {
    await ctx.recorded();
    for (const id of new Set(names)) {
      const ref = (await ctx.store.findLink(network, channel, id))?.refs[dm.target];
      // A parent in another channel there (the mapping changed) cannot be answered in this one.
      if (ref && ref.channel === dm.targetChannel) return { as: { ...dm, parent: ref }, foundBy: id };
    }
  };
  try {
    // Not found: the parent may be our own delivery there, its confirmation not read yet.
    const found = await find() ?? (await ctx.deliveredTo(network, channel) ? await find() : undefined);
    if (found) return found;
  } catch (err) {
    // The answer still goes, quoting its parent, rather than waiting on the store.
    log.warn("Could not look up the parent of a reply to {target} {channel}: {error}", {
      target: dm.target,
      channel: dm.targetChannel,
      error: errorMessage(err),
    });
  }
  ctx.count("unresolved");
  log.debug("The parent of a reply never reached {target} {channel}: quoted instead", {
    target: dm.target,
    channel: dm.targetChannel,
    targetId: reply.targetId,
  });
  // Without a parent, the connector shows the message after a quote of it (`standaloneQuote`).
  return { as: dm };
}

/**
 * Telling a Mattermost user that their post will never reach the other network, and explaining in one sentence
 * why Mattermost refused a message from there.
 *
 * The notice is an ephemeral post (`POST /posts/ephemeral`), seen by the author alone. The server allows that only
 * with the system-scoped `create_post_ephemeral` permission (api4/post.go `createEphemeralPost`), which no default
 * role but `system_admin` has (model/role.go `MakeDefaultRoles`), so a default bot gets 403. The notice then becomes
 * a reply in the thread of the author's post that mentions them: a bot may do that in any channel it bridges.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { BridgeError } from "../core/errors.ts";
import { call, type Client4, statusOf } from "./api.ts";
import { BRIDGE_MARKER_PROP, parsePost } from "./post.ts";

const log = getLogger(["mmxmpp", "mattermost", "notices"]);

/** What a notice is about: the author's post. */
export interface NoticeSubject {
  channel: string;
  postId: string;
  author: { id: string; name: string };
}

/**
 * One sentence for the author of a message Mattermost refused for good (`BridgeError.notice`), from the server's
 * answer: no ids, no URLs.
 *
 * @example
 * ```ts
 * refusalNotice(403, "api.context.permissions.app_error"); // "Mattermost does not let the bridge post in that channel"
 * ```
 */
export function refusalNotice(status: number | undefined, serverErrorId: string | undefined): string {
  if (status === 403) return "Mattermost does not let the bridge post in that channel";
  if (serverErrorId === "model.post.is_valid.message_length.app_error") {
    return "it is too long for Mattermost";
  }
  if (serverErrorId === "api.post.create_post.can_not_post_to_deleted.error") {
    return "the Mattermost channel is archived";
  }
  if (status === 413) return "it is too large for Mattermost";
  return `Mattermost refused it${status ? ` (HTTP ${status})` : ""}`;
}

/** A permanent failure of a create as the error the bus sees, with the sentence for the message's author. */
export function withRefusalNotice(err: unknown): unknown {
  if (!(err instanceof BridgeError) || err.transient || err.notice) return err;
  const serverId = (err.cause as { server_error_id?: unknown } | undefined)?.server_error_id;
  return new BridgeError(err.message, {
    cause: err.cause,
    kind: err.kind,
    notice: refusalNotice(statusOf(err), typeof serverId === "string" ? serverId : undefined),
  });
}

/**
 * Sends notices as the bot: ephemeral while the server allows it, else (after the first 403) as thread replies.
 *
 * @example
 * ```ts
 * const notices = new UndeliverableNotices(client);
 * await notices.send({ channel, postId, author: { id, name: "bob" } }, "Your message could not be bridged: …");
 * ```
 */
export class UndeliverableNotices {
  /** False once the server refused an ephemeral post for lack of permission: it will again, until a restart. */
  private ephemeral = true;
  /** Notices go one at a time, so that the first 403 decides for those behind it instead of each asking again. */
  private last: Promise<void> = Promise.resolve();

  constructor(private readonly client: Client4) {}

  /** Tells `subject.author` `text`, privately when allowed; after the notices already on their way. */
  send(subject: NoticeSubject, text: string): Promise<void> {
    const next = this.last.catch(() => {}).then(() => this.sendNow(subject, text));
    this.last = next;
    return next;
  }

  private async sendNow(subject: NoticeSubject, text: string): Promise<void> {
    if (this.ephemeral) {
      try {
        await call(
          "post an ephemeral notice",
          () =>
            this.client.createPostEphemeral(subject.author.id, {
              channel_id: subject.channel,
              message: text,
            }),
        );
        return;
      } catch (err) {
        if (statusOf(err) !== 403) throw err;
        this.ephemeral = false;
        log.info(
          "The bot may not post ephemeral messages (permission create_post_ephemeral); notices of undelivered " +
            "messages go as thread replies instead",
        );
      }
    }
    await this.reply(subject, text);
  }

  /** A reply in the thread of the author's post (a reply cannot be replied to: its root is the thread). */
  private async reply(subject: NoticeSubject, text: string): Promise<void> {
    const post = parsePost(
      await call("read the undelivered post", () => this.client.getPost(subject.postId)),
    );
    await call("reply with a notice", () =>
      this.client.createPost({
        channel_id: subject.channel,
        root_id: post?.root_id || subject.postId,
        message: `@${subject.author.name} ${text}`,
        props: { [BRIDGE_MARKER_PROP]: "notice" },
      } as never));
  }
}

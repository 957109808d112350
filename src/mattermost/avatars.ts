/**
 * Profile pictures on Mattermost: a user's picture is versioned by `last_picture_update` (0 while the user has the
 * generated default), read with `GET /users/{id}/image` and set with `POST /users/{id}/image` (multipart `image`).
 * A read never goes past the caller's cap. The token goes in the Authorization header only, never in a URL or a log
 * line.
 *
 * @module
 */
import type { FileStream, OpenFileOptions } from "../core/bridge.ts";
import { BridgeError, errorMessage } from "../core/errors.ts";
import { capStream, tooLarge } from "../core/files.ts";
import type { Sender } from "../core/events.ts";
import type { Image } from "../core/images.ts";
import { call, type Client4 } from "./api.ts";

/** The fields of a Mattermost user that say which picture it has. */
export interface PictureFields {
  id: string;
  last_picture_update?: number;
}

/** A user's picture as the core names it (`Sender.avatar`): the version, and where the picture is found. */
export interface AvatarRef {
  /** `last_picture_update`, as a string. */
  version: string;
  /** The user id, for `GET /users/{id}/image`. */
  source: string;
}

/**
 * The picture of `user` as the core names it, or undefined while the user has none of their own (the generated
 * default, which the other network draws better itself).
 *
 * @example
 * ```ts
 * avatarOf({ id: "u1", last_picture_update: 1700000000000 }); // { version: "1700000000000", source: "u1" }
 * ```
 */
export function avatarOf(user: PictureFields): AvatarRef | undefined {
  const version = user.last_picture_update;
  if (typeof version !== "number" || !Number.isSafeInteger(version) || version <= 0) return undefined;
  return { version: String(version), source: user.id };
}

/** Where the versions of the pictures stand-ins show are kept (the bridge's store, `avatar_shown`). */
export interface AvatarShownStore {
  getAvatarShown(network: string, userId: string, where: string): Promise<string | undefined>;
  setAvatarShown(network: string, userId: string, where: string, version: string): Promise<void>;
}

/**
 * Sets `image` as the picture of user `userId` (`POST /users/{id}/image`), through `client`: the user's own (a
 * puppet's), or one with `edit_other_users`. Mattermost keeps the picture it has when it is the same, and else moves
 * `last_picture_update`. Rejects with a BridgeError saying what Mattermost answered.
 */
export async function uploadPicture(client: Client4, userId: string, image: Image): Promise<void> {
  const ext = image.type.split("/")[1] ?? "png";
  const file = new File([image.bytes.slice()], `avatar.${ext}`, { type: image.type });
  await call(`set the picture of user ${userId}`, () => client.uploadProfileImage(userId, file));
}

/**
 * Puts user `userId` back on Mattermost's default picture (`DELETE /users/{id}/image`: `last_picture_update` 0),
 * through `client`: the user's own, or one with `edit_other_users`. Rejects with a BridgeError saying what
 * Mattermost answered.
 */
export async function resetPicture(client: Client4, userId: string): Promise<void> {
  await call(`reset the picture of user ${userId}`, () => client.setDefaultProfileImage(userId));
}

/**
 * The version of the picture `sender` has, as a stand-in keeps it (`avatar_shown`): `""` for none of their own (the
 * default picture), undefined when it is not known.
 *
 * @example
 * ```ts
 * pictureVersion({ network: "xmpp", id: "a", name: "a", avatar: null }); // ""
 * ```
 */
export function pictureVersion(sender: Sender): string | undefined {
  return sender.avatar === null ? "" : sender.avatar?.version;
}

/**
 * Reads profile pictures on one Mattermost server.
 *
 * @example
 * ```ts
 * const avatars = new MattermostAvatars(url, token);
 * const stream = await avatars.open(userId, { maxBytes: 128 * 1024 });
 * ```
 */
export class MattermostAvatars {
  constructor(private readonly url: string, private readonly token: string) {}

  /**
   * Streams the picture of user `userId` (`GET /users/{id}/image`), never past `opts.maxBytes`: one known to be
   * larger is refused before reading, one that turns out larger errors the stream (both a `FileUnavailable`
   * "too-large"). Rejects with a BridgeError when Mattermost cannot be reached or refuses (transient for 5xx, 429).
   */
  async open(userId: string, opts: OpenFileOptions): Promise<FileStream> {
    const res = await this.request("GET", userId, opts.signal);
    if (!res.ok) {
      await res.body?.cancel();
      throw problem(res.status, `read the picture of user ${userId}`);
    }
    const length = Number(res.headers.get("content-length") ?? NaN);
    const size = Number.isSafeInteger(length) && length >= 0 ? length : undefined;
    if (size !== undefined && size > opts.maxBytes) {
      await res.body?.cancel();
      throw tooLarge(opts.maxBytes, size);
    }
    return {
      body: capStream(res.body ?? new Response("").body!, opts.maxBytes),
      size,
      mimeType: res.headers.get("content-type")?.split(";")[0].trim() || undefined,
    };
  }

  private async request(
    method: string,
    userId: string,
    signal?: AbortSignal,
  ): Promise<Response> {
    try {
      return await fetch(`${this.url}/api/v4/users/${encodeURIComponent(userId)}/image`, {
        method,
        headers: { Authorization: `Bearer ${this.token}` },
        signal,
      });
    } catch (err) {
      throw new BridgeError(`cannot reach Mattermost for a profile picture: ${errorMessage(err)}`, {
        transient: true,
        cause: err,
      });
    }
  }
}

/** An error answer as a BridgeError: 5xx, 429 and 408 may pass, the rest will not. */
function problem(status: number, what: string, serverId?: string): BridgeError {
  return new BridgeError(`cannot ${what}: Mattermost answered ${status}${serverId ? ` ${serverId}` : ""}`, {
    transient: status >= 500 || status === 429 || status === 408,
  });
}

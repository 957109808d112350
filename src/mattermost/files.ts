/**
 * Files on Mattermost, for the connector: a post's `file_ids` as attachments (`GET /files/{id}/info`), their bytes
 * streamed with the bot's token (`GET /files/{id}`), and a file from another network uploaded to a channel
 * (`POST /files`, multipart, streamed) for a post's `file_ids`. Client4 only builds file URLs, so these are plain
 * fetches with the token in the Authorization header (never in a URL or a log line).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { type FileStream, FileUnavailable, type OpenFileOptions } from "../core/bridge.ts";
import { BridgeError, errorMessage } from "../core/errors.ts";
import type { Attachment } from "../core/events.ts";
import { capStream, tooLarge } from "../core/files.ts";
import type { Client4 } from "./api.ts";

const log = getLogger(["mmxmpp", "mattermost", "files"]);

/** Mattermost's default `FileSettings.MaxFileSize`, used when the server does not say. */
const DEFAULT_MAX_FILE_SIZE = 100 * 1024 * 1024;

/** Most files one post holds (`file_ids` is at most 300 runes of JSON: 10 ids). */
export const MAX_FILES_PER_POST = 10;

/** The fields of a Mattermost `FileInfo` the bridge reads. */
interface FileInfo {
  id: string;
  name: string;
  size?: number;
  mime_type?: string;
}

/** A post's files, as far as the bridge needs: their ids, and the infos the server sent along, if any. */
export interface PostFiles {
  file_ids?: string[];
  metadata?: { files?: unknown[] };
}

/**
 * Reads and writes files on one Mattermost server as the bot.
 *
 * @example
 * ```ts
 * const files = new MattermostFiles(url, token, client);
 * const attachments = await files.attachmentsOf(post);
 * ```
 */
export class MattermostFiles {
  private maxFileSize?: Promise<number>;

  constructor(
    private readonly url: string,
    private readonly token: string,
    private readonly client: Client4,
  ) {}

  /**
   * The attachments of a post: each file id with its name, type and size (from the post's metadata when it has
   * them, else `GET /files/{id}/info`). A file whose info cannot be read is left out, logged.
   */
  async attachmentsOf(post: PostFiles): Promise<Attachment[]> {
    const ids = (post.file_ids ?? []).filter((id) => typeof id === "string" && id !== "");
    const known = new Map<string, FileInfo>();
    for (const raw of post.metadata?.files ?? []) {
      const info = fileInfo(raw);
      if (info) known.set(info.id, info);
    }
    const attachments: Attachment[] = [];
    for (const id of ids) {
      const info = known.get(id) ?? await this.info(id).catch((err) => {
        log.warn("Could not read the info of Mattermost file {fileId}; it is not bridged: {error}", {
          fileId: id,
          error: errorMessage(err),
        });
        return undefined;
      });
      if (!info) continue;
      attachments.push({
        name: info.name,
        mimeType: info.mime_type || undefined,
        size: info.size,
        source: info.id,
        url: `${this.url}/api/v4/files/${info.id}?download=1`,
      });
    }
    return attachments;
  }

  /** Streams a file's bytes (`GET /files/{id}`), capped at `opts.maxBytes`. */
  async open(attachment: Attachment, opts: OpenFileOptions): Promise<FileStream> {
    if (attachment.size !== undefined && attachment.size > opts.maxBytes) {
      throw tooLarge(opts.maxBytes, attachment.size);
    }
    const res = await this.request("GET", `/files/${encodeURIComponent(attachment.source)}`, {
      signal: opts.signal,
    });
    if (!res.ok) {
      await res.body?.cancel();
      throw answerProblem(res.status, "read the file");
    }
    const length = Number(res.headers.get("content-length") ?? NaN);
    const size = Number.isSafeInteger(length) && length >= 0 ? length : attachment.size;
    if (size !== undefined && size > opts.maxBytes) {
      await res.body?.cancel();
      throw tooLarge(opts.maxBytes, size);
    }
    return {
      body: capStream(res.body ?? new Response("").body!, opts.maxBytes),
      size,
      mimeType: res.headers.get("content-type")?.split(";")[0].trim() || attachment.mimeType,
    };
  }

  /**
   * Uploads one file to `channelId` (`POST /files`, multipart with `channel_id` first, so that the server streams
   * it) and returns its file id, for a post's `file_ids`. Rejects with a {@link FileUnavailable} when the server
   * refuses it (413 over `MaxFileSize`, 403), a transient BridgeError when it may work later.
   */
  async upload(channelId: string, attachment: Attachment, file: FileStream): Promise<string> {
    const boundary = `mmxmpp-${crypto.randomUUID()}`;
    const name = attachment.name.replace(/[\r\n"]/g, "_");
    const head =
      `--${boundary}\r\nContent-Disposition: form-data; name="channel_id"\r\n\r\n${channelId}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="files"; filename="${name}"\r\n` +
      `Content-Type: ${attachment.mimeType ?? file.mimeType ?? "application/octet-stream"}\r\n\r\n`;
    const tail = `\r\n--${boundary}--\r\n`;
    const res = await this.request("POST", "/files", {
      body: concatStreams([text(head), file.body, text(tail)]),
      contentType: `multipart/form-data; boundary=${boundary}`,
    });
    const answer = await res.json().catch(() => undefined);
    if (res.status === 413) {
      throw new FileUnavailable("too-large", "it is larger than Mattermost accepts");
    }
    if (!res.ok) throw answerProblem(res.status, "upload the file", answer?.id);
    const id = answer?.file_infos?.[0]?.id;
    if (typeof id !== "string") throw new BridgeError("Mattermost answered an upload without a file id");
    return id;
  }

  /** `FileSettings.MaxFileSize` from the client config, read once; Mattermost's default when it cannot be read. */
  maxBytes(): Promise<number> {
    this.maxFileSize ??= this.client.getClientConfig().then(
      (config) => {
        const max = Number((config as { MaxFileSize?: unknown }).MaxFileSize);
        return Number.isSafeInteger(max) && max > 0 ? max : DEFAULT_MAX_FILE_SIZE;
      },
      (err) => {
        this.maxFileSize = undefined;
        log.warn("Could not read Mattermost's MaxFileSize; assuming {max} bytes: {error}", {
          max: DEFAULT_MAX_FILE_SIZE,
          error: errorMessage(err),
        });
        return DEFAULT_MAX_FILE_SIZE;
      },
    );
    return this.maxFileSize;
  }

  private async info(id: string): Promise<FileInfo> {
    const res = await this.request("GET", `/files/${encodeURIComponent(id)}/info`);
    const body = await res.json().catch(() => undefined);
    if (!res.ok) throw answerProblem(res.status, "read the file's info", body?.id);
    const info = fileInfo(body);
    if (!info) throw new BridgeError(`Mattermost answered the info of file ${id} without a name`);
    return info;
  }

  private async request(
    method: string,
    path: string,
    opts: { body?: ReadableStream<Uint8Array>; contentType?: string; signal?: AbortSignal } = {},
  ): Promise<Response> {
    try {
      return await fetch(`${this.url}/api/v4${path}`, {
        method,
        headers: {
          Authorization: `Bearer ${this.token}`,
          ...(opts.contentType ? { "Content-Type": opts.contentType } : {}),
        },
        body: opts.body,
        signal: opts.signal,
      });
    } catch (err) {
      // The file's own stream failing (over the size cap) is why, not the request.
      const cause = err instanceof FileUnavailable ? err : (err as { cause?: unknown })?.cause;
      if (cause instanceof FileUnavailable) throw cause;
      throw new BridgeError(
        `cannot reach Mattermost for ${method} ${path.split("/").slice(0, 2).join("/")}: ${
          errorMessage(err)
        }`,
        { transient: true, cause: err },
      );
    }
  }
}

/** A FileInfo from the server, checked. */
function fileInfo(raw: unknown): FileInfo | undefined {
  const r = raw as Record<string, unknown> | null;
  if (typeof r?.id !== "string" || typeof r.name !== "string") return undefined;
  return {
    id: r.id,
    name: r.name,
    size: typeof r.size === "number" && Number.isSafeInteger(r.size) ? r.size : undefined,
    mime_type: typeof r.mime_type === "string" ? r.mime_type : undefined,
  };
}

/** An error answer: gone or forbidden files are unavailable for good; 5xx and 429 may pass. */
function answerProblem(status: number, what: string, serverId?: string): Error {
  const detail = `HTTP ${status}${serverId ? ` ${serverId}` : ""}`;
  if (status >= 500 || status === 429 || status === 408) {
    return new BridgeError(`cannot ${what} on Mattermost: ${detail}`, { transient: true });
  }
  return new FileUnavailable(
    status === 404 ? "failed" : "refused",
    status === 404 ? "it is no longer on Mattermost" : `Mattermost refused to ${what} (${detail})`,
  );
}

function text(s: string): ReadableStream<Uint8Array> {
  return new Response(s).body!;
}

/** The streams one after the other, each read only when the one before it ended. */
function concatStreams(streams: ReadableStream<Uint8Array>[]): ReadableStream<Uint8Array> {
  let index = 0;
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      while (index < streams.length) {
        reader ??= streams[index].getReader();
        const { done, value } = await reader.read();
        if (!done) {
          controller.enqueue(value);
          return;
        }
        reader = undefined;
        index++;
      }
      controller.close();
    },
    async cancel(reason) {
      await reader?.cancel(reason);
      for (const stream of streams.slice(index + 1)) await stream.cancel(reason).catch(() => {});
    },
  });
}

/**
 * File routes: multipart upload, download and metadata.
 *
 * @module
 */

import { AppError, invalidParam, notFound, permissionError } from "./app_error.ts";
import { tooLarge, uploadFiles, type UploadPart } from "./files.ts";
import { json, type RequestContext, requireUser } from "./http.ts";
import { idParam } from "./lookup.ts";
import type { FileInfo } from "./model.ts";
import { hasChannelPermission } from "./permissions.ts";
import type { Router } from "./router.ts";
import type { StoredFile } from "./store.ts";

/**
 * The file named by `:file_id` if the caller may see it: its uploader always; others need the
 * `read_channel_content` permission on the channel (membership or admin).
 */
function readableFile(ctx: RequestContext): StoredFile {
  const actor = requireUser(ctx);
  const file = ctx.app.store.files.get(idParam(ctx, "file_id"));
  if (!file || file.info.delete_at !== 0) throw notFound("app.file_info.get.app_error", "file");
  if (file.info.user_id === actor.id) return file;
  const channel = ctx.app.store.channels.get(file.info.channel_id)!;
  if (file.info.post_id === "" || !hasChannelPermission(ctx.app.store, actor, channel)) {
    throw permissionError("read_channel_content");
  }
  return file;
}

/**
 * Parse a multipart upload like `uploadFileMultipart` (api4/file.go). When `channel_id` comes before the first
 * file, the server streams: every part with a filename is a file, whatever its field name; `client_ids` must pair
 * up with the files; any other field is a 400 `invalid_param`, and a second, different `channel_id` a 400
 * `multiple_channel_ids`. When a file comes first, it falls back to the legacy buffered mode
 * (`uploadFileMultipartLegacy`): the whole form is read, files are only the `files` fields, `channel_id` may come
 * anywhere (missing: 400 `invalid_param`), other fields are ignored, and `client_ids` must be none or one per file.
 */
async function parseMultipart(
  ctx: RequestContext,
): Promise<{ channelId: string; parts: UploadPart[]; clientIds: string[] }> {
  let form: FormData;
  try {
    form = await ctx.req.formData();
  } catch {
    throw invalidParam("multipart");
  }
  const entries = [...form.entries()];
  const queryChannel = ctx.url.searchParams.get("channel_id") ?? "";
  const firstFile = entries.findIndex(([, value]) => typeof value !== "string");
  const firstChannel = entries.findIndex(([name, value]) =>
    name === "channel_id" && typeof value === "string"
  );
  const streaming = firstChannel >= 0 && (firstFile < 0 || firstChannel < firstFile);
  const parts: UploadPart[] = [];
  const clientIds: string[] = [];
  const fileOf = async (value: File) => ({
    name: value.name || "file",
    data: new Uint8Array(await value.arrayBuffer()),
  });
  if (!streaming) {
    const channelId = form.get("channel_id");
    if (typeof channelId !== "string" || channelId === "") throw invalidParam("channel_id");
    for (const value of form.getAll("files")) if (typeof value !== "string") parts.push(await fileOf(value));
    for (const value of form.getAll("client_ids")) if (typeof value === "string") clientIds.push(value);
    if (clientIds.length && clientIds.length !== parts.length) throw incorrectClientIds(clientIds, parts);
    return { channelId, parts, clientIds };
  }
  let channelId = queryChannel;
  for (const [name, value] of entries) {
    if (typeof value !== "string") {
      parts.push(await fileOf(value));
    } else if (name === "channel_id") {
      if (channelId !== "" && channelId !== value) {
        throw new AppError(
          "api.file.upload_file.multiple_channel_ids.app_error",
          "Unable to upload files. Multiple conflicting channel_ids.",
          400,
        );
      }
      if (value !== "") channelId = value;
    } else if (name === "client_ids") {
      // Client ids after the first file, when none came before it, are not expected.
      if (parts.length > 0 && clientIds.length === 0) throw invalidParam("client_ids");
      clientIds.push(value);
    } else {
      throw invalidParam(name);
    }
  }
  if (!channelId) throw invalidParam("channel_id");
  if (clientIds.length && clientIds.length !== parts.length) throw incorrectClientIds(clientIds, parts);
  return { channelId, parts, clientIds };
}

/** 400 like `api.file.upload_file.incorrect_number_of_client_ids.app_error`. */
function incorrectClientIds(clientIds: string[], parts: UploadPart[]): AppError {
  return new AppError(
    "api.file.upload_file.incorrect_number_of_client_ids.app_error",
    `Unable to upload files. Have ${clientIds.length} client_ids for ${parts.length} files.`,
    400,
  );
}

/** Register the file routes. */
export function registerFileRoutes(router: Router): void {
  router.add("POST", "/files", async (ctx) => {
    const actor = requireUser(ctx);
    const max = ctx.app.config.maxFileSize;
    // Go's r.ContentLength: the header's value, -1 for a body of unknown length (chunked), 0 without a body.
    const header = ctx.req.headers.get("content-length");
    const length = header !== null ? Number(header) : ctx.req.body ? -1 : 0;
    if (length === 0) {
      throw new AppError(
        "api.file.upload_file.read_request.app_error",
        "Unable to upload file(s). Error reading or parsing request data.",
        400,
        "Content-Length should not be 0",
      );
    }
    if (length > max) throw tooLarge(max);
    let infos: FileInfo[];
    let clientIds: string[] = [];
    if ((ctx.req.headers.get("content-type") ?? "").startsWith("multipart/form-data")) {
      const parsed = await parseMultipart(ctx);
      clientIds = parsed.clientIds;
      infos = uploadFiles(ctx.app, actor, parsed.channelId, parsed.parts);
    } else {
      const channelId = ctx.url.searchParams.get("channel_id") ?? "";
      const filename = ctx.url.searchParams.get("filename") ?? "";
      if (!channelId) throw invalidParam("channel_id");
      if (!filename) throw invalidParam("filename");
      const data = new Uint8Array(await ctx.req.arrayBuffer());
      infos = uploadFiles(ctx.app, actor, channelId, [{ name: filename, data }]);
    }
    return json(201, { file_infos: infos, client_ids: clientIds });
  });

  router.add("GET", "/files/:file_id", (ctx) => {
    const { info, data } = readableFile(ctx);
    const disposition = ctx.url.searchParams.get("download") === "1" ? "attachment" : "inline";
    return new Response(data.slice(), {
      status: 200,
      headers: {
        "Content-Type": info.mime_type,
        "Content-Disposition": `${disposition};filename="${info.name.replace(/"/g, "")}"; filename*=UTF-8''${
          encodeURIComponent(info.name)
        }`,
        "X-Content-Type-Options": "nosniff",
      },
    });
  });

  router.add("GET", "/files/:file_id/info", (ctx) => json(200, readableFile(ctx).info));
}

/**
 * File routes: multipart upload, download and metadata.
 *
 * @module
 */

import { invalidParam, notFound, permissionError } from "./app_error.ts";
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
 * Parse a multipart upload like the server's streaming reader: `channel_id` must come before the
 * first file, and `client_ids`, when given, must pair up with the files.
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
  let channelId = ctx.url.searchParams.get("channel_id") ?? "";
  const parts: UploadPart[] = [];
  const clientIds: string[] = [];
  for (const [name, value] of form.entries()) {
    if (name === "channel_id" && typeof value === "string") channelId = value;
    else if (name === "client_ids" && typeof value === "string") clientIds.push(value);
    else if (name === "files" && typeof value !== "string") {
      if (!channelId) throw invalidParam("channel_id");
      parts.push({ name: value.name || "file", data: new Uint8Array(await value.arrayBuffer()) });
    }
  }
  if (!channelId) throw invalidParam("channel_id");
  if (clientIds.length && clientIds.length !== parts.length) throw invalidParam("client_ids");
  return { channelId, parts, clientIds };
}

/** Register the file routes. */
export function registerFileRoutes(router: Router): void {
  router.add("POST", "/files", async (ctx) => {
    const actor = requireUser(ctx);
    const max = ctx.app.config.maxFileSize;
    const length = Number(ctx.req.headers.get("content-length") ?? "0");
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

/**
 * File uploads (`POST /files`) and attaching them to posts.
 *
 * @module
 */

import { AppError, invalidParam, permissionError } from "./app_error.ts";
import type { App } from "./app.ts";
import { newId } from "./ids.ts";
import type { FileInfo, Post, User } from "./model.ts";
import { hasChannelPermission } from "./permissions.ts";
import type { Store } from "./store.ts";

const MIME_TYPES: Record<string, string> = {
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
  svg: "image/svg+xml",
  txt: "text/plain",
  pdf: "application/pdf",
  mp3: "audio/mpeg",
  ogg: "audio/ogg",
  mp4: "video/mp4",
  json: "application/json",
  zip: "application/zip",
};

/** One file part of an upload. */
export interface UploadPart {
  name: string;
  data: Uint8Array;
}

/** 413 like the real server for a request or file over `FileSettings.MaxFileSize`. */
export function tooLarge(maxFileSize: number): AppError {
  return new AppError(
    "api.file.upload_file.too_large_detailed.app_error",
    `Unable to upload file. File is larger than the maximum of ${maxFileSize} bytes.`,
    413,
  );
}

/**
 * Store uploaded files for a channel, as `POST /files`: the uploader must be allowed to upload there
 * (`upload_file`: channel members and admins) and each file must fit `MaxFileSize`. Files stay
 * unattached until a post names them in `file_ids`.
 */
export function uploadFiles(app: App, user: User, channelId: string, parts: UploadPart[]): FileInfo[] {
  const channel = app.store.channels.get(channelId);
  if (!channel || !hasChannelPermission(app.store, user, channel)) throw permissionError("upload_file");
  if (parts.length === 0) throw invalidParam("files");
  for (const part of parts) {
    if (part.data.byteLength > app.config.maxFileSize) throw tooLarge(app.config.maxFileSize);
  }
  return parts.map((part) => {
    const now = app.store.clock.now();
    const dot = part.name.lastIndexOf(".");
    const extension = dot >= 0 ? part.name.slice(dot + 1).toLowerCase() : "";
    const info: FileInfo = {
      id: newId(),
      user_id: user.id,
      post_id: "",
      channel_id: channelId,
      create_at: now,
      update_at: now,
      delete_at: 0,
      name: part.name,
      extension,
      size: part.data.byteLength,
      mime_type: MIME_TYPES[extension] ?? "application/octet-stream",
      width: 0,
      height: 0,
      has_preview_image: false,
      mini_preview: null,
      archived: false,
    };
    app.store.files.set(info.id, { info, data: part.data });
    return structuredClone(info);
  });
}

/**
 * Attach files to a post like `attachFilesToPost`: a file is attached only if the post's author uploaded
 * it to the same channel and it is not attached elsewhere; the others are silently dropped from the post.
 * Returns the ids that were attached.
 */
export function attachFiles(store: Store, fileIds: string[], post: Post): string[] {
  const attached: string[] = [];
  for (const id of fileIds) {
    const file = store.files.get(id);
    if (!file || file.info.delete_at !== 0) continue;
    if (file.info.user_id !== post.user_id || file.info.channel_id !== post.channel_id) continue;
    if (file.info.post_id !== "" && file.info.post_id !== post.id) continue;
    file.info.post_id = post.id;
    attached.push(id);
  }
  return attached;
}

/**
 * Profile images: `POST /users/{id}/image` (api4/user.go `setProfileImage`, app/user.go `SetProfileImage` →
 * `SetProfileImageFromMultipartFile` → `SetProfileImageFromFile`), `GET /users/{id}/image` (api4/user.go
 * `getProfileImage`, app/user.go `GetProfileImage`) and `DELETE /users/{id}/image` (api4/user.go
 * `setDefaultProfileImage`, app/user.go `SetDefaultProfileImage`), with `last_picture_update` as the picture's
 * version and ETag.
 *
 * The real server decodes the image, scales it to 128×128 and stores it re-encoded as PNG; the stand-in has no
 * image codec: it reads the image's header (PNG, GIF, JPEG) for its size, as `image.DecodeConfig` does, and keeps
 * the bytes as sent.
 *
 * @module
 */

import { AppError, invalidUrlParam, permissionError } from "./app_error.ts";
import type { App } from "./app.ts";
import { newEvent } from "./events.ts";
import { type RequestContext, requireUser, statusOk } from "./http.ts";
import { idParam, userParam } from "./lookup.ts";
import type { User } from "./model.ts";
import type { Router } from "./router.ts";
import { isSystemAdmin, type Store } from "./store.ts";
import { userView } from "./users.ts";

/** The generated picture of a user who never set one: a 1×1 transparent PNG (the server draws initials). */
export const DEFAULT_PROFILE_PNG = Uint8Array.from(
  atob("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="),
  (c) => c.charCodeAt(0),
);

/** `FileSettings.MaxImageResolution`'s default: width × height above it is refused (`checkImageLimits`). */
export const MAX_IMAGE_RESOLUTION = 7680 * 4320;

/** What `image.DecodeConfig` learns from an image's header. */
export interface ImageConfig {
  format: "png" | "gif" | "jpeg";
  width: number;
  height: number;
}

/**
 * The format and size of `data` read from its header, or undefined when it is no image the server decodes (here:
 * PNG, GIF and JPEG).
 *
 * @example
 * ```ts
 * imageConfig(DEFAULT_PROFILE_PNG); // { format: "png", width: 1, height: 1 }
 * ```
 */
export function imageConfig(data: Uint8Array): ImageConfig | undefined {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const ascii = (from: number, to: number) => String.fromCharCode(...data.subarray(from, to));
  if (data.length >= 24 && data[0] === 0x89 && ascii(1, 4) === "PNG" && ascii(12, 16) === "IHDR") {
    return { format: "png", width: view.getUint32(16), height: view.getUint32(20) };
  }
  if (data.length >= 10 && (ascii(0, 6) === "GIF87a" || ascii(0, 6) === "GIF89a")) {
    return { format: "gif", width: view.getUint16(6, true), height: view.getUint16(8, true) };
  }
  if (data.length >= 4 && data[0] === 0xff && data[1] === 0xd8) {
    // Segments up to the first start-of-frame (SOF0–SOF15 but DHT, JPG and DAC), which holds the size.
    for (let i = 2; i + 9 < data.length;) {
      if (data[i] !== 0xff) return undefined;
      const marker = data[i + 1];
      if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
        return { format: "jpeg", height: view.getUint16(i + 5), width: view.getUint16(i + 7) };
      }
      i += 2 + view.getUint16(i + 2);
    }
  }
  return undefined;
}

/** The user's picture as `GET /users/{id}/image` serves it: the one set, else the generated default. */
export function profileImageOf(store: Store, user: User): { data: Uint8Array; type: string } {
  const data = store.profileImages.get(user.id);
  if (!data || user.last_picture_update === 0) return { data: DEFAULT_PROFILE_PNG, type: "image/png" };
  return { data, type: `image/${imageConfig(data)?.format ?? "png"}` };
}

/**
 * Sets `user`'s picture as `SetProfileImageFromMultipartFile` does: refused (400) when its header cannot be read
 * (`decode_config`) or it has too many pixels (`check_image_limits`); the same picture again changes nothing; a new
 * one moves `last_picture_update` and publishes `user_updated` (`invalidateUserCacheAndPublish`).
 */
export function setProfileImage(app: App, user: User, data: Uint8Array): void {
  const config = imageConfig(data);
  if (!config) {
    throw new AppError(
      "api.user.upload_profile_user.decode_config.app_error",
      "Unable to save profile image. File does not appear to be a valid image.",
      400,
    );
  }
  if (config.width * config.height > MAX_IMAGE_RESOLUTION) {
    throw new AppError(
      "api.user.upload_profile_user.check_image_limits.app_error",
      "Image exceeds maximum dimensions.",
      400,
    );
  }
  const stored = app.store.profileImages.get(user.id);
  if (stored && user.last_picture_update !== 0 && equalBytes(stored, data)) return;
  app.store.profileImages.set(user.id, data.slice());
  const now = app.store.clock.now();
  user.last_picture_update = now;
  user.update_at = now;
  app.publish(newEvent("user_updated", { user: userView(user) }));
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** The `image` file of a multipart body, checked in `setProfileImage`'s order. */
async function imagePart(ctx: RequestContext): Promise<Uint8Array> {
  const max = ctx.app.config.maxFileSize;
  if (Number(ctx.req.headers.get("content-length") ?? 0) > max) {
    throw new AppError(
      "api.user.upload_profile_user.too_large.app_error",
      "Unable to upload profile image. File is too large.",
      413,
    );
  }
  let form: FormData;
  try {
    form = await ctx.req.formData();
  } catch (err) {
    throw new AppError(
      "api.user.upload_profile_user.parse.app_error",
      "Could not parse multipart form.",
      500,
      String(err),
    );
  }
  const files = form.getAll("image").filter((v): v is File => typeof v !== "string");
  if (files.length === 0) {
    throw new AppError(
      "api.user.upload_profile_user.no_file.app_error",
      "No file under 'image' in request.",
      400,
    );
  }
  return new Uint8Array(await files[0].arrayBuffer());
}

/** Registers `GET` and `POST /users/{id}/image`. */
export function registerProfileImageRoutes(router: Router): void {
  router.add("GET", "/users/:user_id/image", (ctx) => {
    requireUser(ctx);
    const user = userParam(ctx);
    const etag = String(user.last_picture_update);
    // HandleEtag: a client that has this version gets 304 and no body.
    if (ctx.req.headers.get("if-none-match") === etag) return new Response(null, { status: 304 });
    const { data, type } = profileImageOf(ctx.app.store, user);
    return new Response(data.slice(), {
      status: 200,
      headers: { "Content-Type": type, "Cache-Control": "max-age=86400, private", ETag: etag },
    });
  });

  // setDefaultProfileImage → app/user.go SetDefaultProfileImage: the default picture again, last_picture_update 0
  // (ResetLastPictureUpdate), and user_updated to everyone.
  router.add("DELETE", "/users/:user_id/image", (ctx) => {
    const actor = requireUser(ctx);
    const userId = idParam(ctx, "user_id");
    if (actor.id !== userId && !isSystemAdmin(actor)) throw permissionError("edit_other_users");
    const target = userParam(ctx);
    ctx.app.store.profileImages.delete(target.id);
    target.last_picture_update = 0;
    target.update_at = ctx.app.store.clock.now();
    ctx.app.publish(newEvent("user_updated", { user: userView(target) }));
    return statusOk();
  });

  // In the server's order: the permission before the body, the user looked up only after the body was read.
  router.add("POST", "/users/:user_id/image", async (ctx) => {
    const actor = requireUser(ctx);
    const userId = idParam(ctx, "user_id");
    if (actor.id !== userId && !isSystemAdmin(actor)) throw permissionError("edit_other_users");
    const data = await imagePart(ctx);
    const target = ctx.app.store.users.get(userId);
    if (!target) throw invalidUrlParam("user_id");
    setProfileImage(ctx.app, target, data);
    return statusOk();
  });
}

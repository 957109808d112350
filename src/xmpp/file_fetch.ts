/**
 * Downloading a file an XMPP message shared by URL (XEP-0066, usually an XEP-0363 upload), safely: https from any
 * host, plain http only from allowed hosts (`BRIDGE_FILE_FETCH_HOSTS`, else the server's upload service), every
 * redirect checked the same way, a time limit, and the size capped while streaming.
 *
 * @module
 */
import { type FileStream, FileUnavailable, type OpenFileOptions } from "../core/bridge.ts";
import { capStream, tooLarge } from "../core/files.ts";
import { errorMessage } from "../core/errors.ts";

/** How long a server may take to start answering. */
const HEADERS_TIMEOUT_MS = 30_000;
/** How long a whole download may take. */
const BODY_TIMEOUT_MS = 10 * 60_000;
/** Redirects followed, each checked like the first URL. */
const MAX_REDIRECTS = 3;

/** Options of {@link openUrl}. */
export interface FetchPolicy extends OpenFileOptions {
  /** Whether plain http may be used with `host` (`name` or `name:port`, lowercase, as `URL.host`). */
  httpAllowed(host: string): Promise<boolean>;
  /** Test hook: the time limit for the answer's headers (default 30 s). */
  headersTimeoutMs?: number;
}

/**
 * Opens `url` for reading under `policy`. Rejects with a {@link FileUnavailable} saying why the file cannot be had
 * (a refused address, an error answer, a timeout, over `maxBytes`); the stream errors likewise if the body runs over
 * `maxBytes` or the download takes too long.
 *
 * @example
 * ```ts
 * const file = await openUrl("https://up.example.org/x/a.png", { maxBytes: 1 << 20, httpAllowed: async () => false });
 * ```
 */
export async function openUrl(url: string, policy: FetchPolicy): Promise<FileStream> {
  const abort = new AbortController();
  const signal = policy.signal ? AbortSignal.any([policy.signal, abort.signal]) : abort.signal;
  const headersTimer = setTimeout(
    () => abort.abort(new FileUnavailable("failed", "the download timed out")),
    policy.headersTimeoutMs ?? HEADERS_TIMEOUT_MS,
  );
  let res: Response;
  try {
    res = await follow(url, policy, signal);
  } catch (err) {
    abort.abort();
    throw err;
  } finally {
    clearTimeout(headersTimer);
  }
  const length = Number(res.headers.get("content-length") ?? NaN);
  const size = Number.isSafeInteger(length) && length >= 0 ? length : undefined;
  if (size !== undefined && size > policy.maxBytes) {
    abort.abort();
    throw tooLarge(policy.maxBytes, size);
  }
  const bodyTimer = setTimeout(
    () => abort.abort(new FileUnavailable("failed", "the download took too long")),
    BODY_TIMEOUT_MS,
  );
  const reader = capStream(res.body ?? new Response("").body!, policy.maxBytes).getReader();
  // The timer ends with the body however it ends: read to the end, failed, or cancelled by the consumer.
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) {
          clearTimeout(bodyTimer);
          controller.close();
        } else controller.enqueue(value);
      } catch (err) {
        clearTimeout(bodyTimer);
        controller.error(signal.reason instanceof FileUnavailable ? signal.reason : err);
      }
    },
    cancel(reason) {
      clearTimeout(bodyTimer);
      return reader.cancel(reason);
    },
  });
  return { body, size, mimeType: res.headers.get("content-type")?.split(";")[0].trim() || undefined };
}

/** GETs `url`, following redirects only to addresses the policy allows. */
async function follow(url: string, policy: FetchPolicy, signal: AbortSignal): Promise<Response> {
  let current = url;
  for (let hop = 0;; hop++) {
    await checkAddress(current, policy);
    let res: Response;
    try {
      res = await fetch(current, { redirect: "manual", signal });
    } catch (err) {
      if (signal.reason instanceof FileUnavailable) throw signal.reason;
      throw new FileUnavailable("failed", `the download failed (${errorMessage(err)})`, { cause: err });
    }
    const location = res.headers.get("location");
    if (res.status >= 300 && res.status < 400 && location) {
      await res.body?.cancel();
      if (hop >= MAX_REDIRECTS) throw new FileUnavailable("failed", "the download was redirected too often");
      current = new URL(location, current).toString();
      continue;
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new FileUnavailable("failed", `the download failed (HTTP ${res.status})`);
    }
    return res;
  }
}

/** Refuses what is not https, or http to an allowed host. */
async function checkAddress(url: string, policy: FetchPolicy): Promise<void> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new FileUnavailable("refused", "its address is not a URL");
  }
  if (u.username || u.password) throw new FileUnavailable("refused", "its address carries credentials");
  if (u.protocol === "https:") return;
  if (u.protocol === "http:" && await policy.httpAllowed(u.host.toLowerCase())) return;
  throw new FileUnavailable(
    "refused",
    u.protocol === "http:"
      ? `the bridge does not download over plain http from ${u.host} (see BRIDGE_FILE_FETCH_HOSTS)`
      : `the bridge does not download ${u.protocol.replace(/:$/, "")} addresses`,
  );
}

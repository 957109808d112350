/**
 * XEP-0363 HTTP File Upload: asking the server's upload service (found by disco, see capabilities.ts) for a slot,
 * and putting a file's bytes there, streamed. The slot's GET URL is what a message then shares (XEP-0066).
 *
 * @module
 */
import { xml } from "@xmpp/client-core";
import { FileUnavailable } from "../../core/bridge.ts";
import { BridgeError, errorMessage } from "../../core/errors.ts";
import { tooLarge } from "../../core/files.ts";
import type { Element } from "../session/client.ts";
import type { IqRequester } from "../protocol/disco.ts";
import { NS_UPLOAD } from "../protocol/ns.ts";
import type { XepModule } from "./xep.ts";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";

/** Where one file goes: PUT its bytes to `put` with `headers`, then anyone may GET it at `get`. */
export interface UploadSlot {
  put: string;
  /** Only the headers XEP-0363 lets a service ask for (`Authorization`, `Cookie`, `Expires`). */
  headers: Record<string, string>;
  get: string;
}

/** A file to ask a slot for. */
export interface SlotRequest {
  name: string;
  /** Exact size in bytes: the service checks the upload against it. */
  size: number;
  mimeType?: string;
}

/** What the module offers once the server has an upload service. */
export interface Xep0363Api {
  /** The upload service's JID. */
  readonly service: string;
  /** Its advertised `max-file-size` in bytes, when it states one. */
  readonly maxFileSize?: number;
  /**
   * Asks for a slot. Rejects with a {@link FileUnavailable} when the service refuses the file (too large, not
   * allowed), with a transient BridgeError when it does not answer.
   */
  requestSlot(file: SlotRequest): Promise<UploadSlot>;
}

/** How long an upload may go without progress. */
const PUT_IDLE_TIMEOUT_MS = 60_000;

/** How long the service may take to answer a slot request. */
const SLOT_TIMEOUT_MS = 10_000;

/** The headers a slot may ask for (XEP-0363 §5); any other is dropped. */
const SLOT_HEADERS = new Set(["authorization", "cookie", "expires"]);

/** XEP-0363, enabled when the server lists an upload service. */
export const xep0363: XepModule<Xep0363Api> = {
  id: "xep0363",
  name: "XEP-0363 HTTP File Upload",
  namespaces: [NS_UPLOAD],
  isOffered: (caps) => caps.upload !== undefined,
  create: ({ client, caps }) => uploadApi(client, caps.upload!.jid, caps.upload!.maxFileSize),
};

/**
 * The upload API for `service` through `client`.
 *
 * @example
 * ```ts
 * const slot = await uploadApi(client, "upload.example.org", 10_485_760).requestSlot({ name: "a.png", size: 42 });
 * ```
 */
export function uploadApi(client: IqRequester, service: string, maxFileSize?: number): Xep0363Api {
  return {
    service,
    maxFileSize,
    async requestSlot(file: SlotRequest): Promise<UploadSlot> {
      if (maxFileSize !== undefined && file.size > maxFileSize) throw tooLarge(maxFileSize, file.size);
      const request = xml("request", {
        xmlns: NS_UPLOAD,
        filename: file.name,
        size: String(file.size),
        ...(file.mimeType ? { "content-type": file.mimeType } : {}),
      });
      let answer: Element;
      try {
        answer = await client.iqCaller.request(
          xml("iq", { type: "get", to: service }, request),
          SLOT_TIMEOUT_MS,
        );
      } catch (err) {
        throw slotRefused(err, service);
      }
      return parseSlot(answer.getChild("slot", NS_UPLOAD), service);
    },
  };
}

/** The slot in an answer, checked: both URLs http(s). */
function parseSlot(slot: Element | undefined, service: string): UploadSlot {
  const put = slot?.getChild("put")?.attrs.url;
  const get = slot?.getChild("get")?.attrs.url;
  if (!isHttpUrl(put) || !isHttpUrl(get)) {
    throw new FileUnavailable("failed", `the upload service ${service} gave no usable slot`);
  }
  const headers: Record<string, string> = {};
  for (const header of slot!.getChild("put")!.getChildren("header")) {
    const name = String(header.attrs.name ?? "");
    // XEP-0363: newlines in a header value must not reach the request.
    if (SLOT_HEADERS.has(name.toLowerCase())) headers[name] = header.text().replace(/[\r\n]/g, "");
  }
  return { put, headers, get };
}

function isHttpUrl(value: unknown): value is string {
  return typeof value === "string" && URL.canParse(value) && /^https?:$/.test(new URL(value).protocol);
}

/** A refused slot request as a {@link FileUnavailable}; no answer at all as a transient error. */
function slotRefused(err: unknown, service: string): Error {
  const e = err as { condition?: string; element?: Element; name?: string };
  if (!e?.condition) {
    return new BridgeError(`the upload service ${service} did not answer: ${errorMessage(err)}`, {
      transient: true,
      cause: err,
    });
  }
  const limit = Number(e.element?.getChild("file-too-large", NS_UPLOAD)?.getChildText("max-file-size"));
  if (Number.isSafeInteger(limit) && limit > 0) return tooLarge(limit);
  // A quota (resource-constraint) may last a day: the message goes on with a link rather than wait.
  const text = (err as { text?: string }).text;
  return new FileUnavailable(
    "refused",
    `the XMPP upload service refused it (${e.condition}${text ? `: ${text.slice(0, 100)}` : ""})`,
    { cause: err },
  );
}

/**
 * PUTs `body` (exactly `size` bytes) to `slot`, streamed with a Content-Length: upload services check the length
 * against the slot, and some (Prosody 0.12's mod_http_file_share) cannot take a chunked body, which is all `fetch`
 * sends for a stream. Rejects with a {@link FileUnavailable} when the service refuses it (413 and other 4xx), or
 * the body's own {@link FileUnavailable} (over the cap); a transient BridgeError on a 5xx or no answer.
 */
export async function putToSlot(
  slot: UploadSlot,
  body: ReadableStream<Uint8Array>,
  file: { size: number; mimeType?: string },
): Promise<void> {
  const host = new URL(slot.put).host;
  let status: number;
  try {
    status = await put(slot.put, {
      ...slot.headers,
      "Content-Type": file.mimeType || "application/octet-stream",
      "Content-Length": String(file.size),
    }, body);
  } catch (err) {
    if (err instanceof FileUnavailable) throw err;
    throw new BridgeError(`cannot upload to ${host}: ${errorMessage(err)}`, { transient: true, cause: err });
  }
  if (status >= 200 && status < 300) return;
  if (status === 413) throw new FileUnavailable("too-large", "the XMPP upload service says it is too large");
  if (status >= 500) {
    throw new BridgeError(`the upload to ${host} failed with HTTP ${status}`, { transient: true });
  }
  throw new FileUnavailable("refused", `the XMPP upload service refused it (HTTP ${status})`);
}

/** One PUT of `body` with `headers` as given (no chunking); resolves with the answer's status. */
function put(
  url: string,
  headers: Record<string, string>,
  body: ReadableStream<Uint8Array>,
): Promise<number> {
  const send = new URL(url).protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise<number>((resolve, reject) => {
    const req = send(url, { method: "PUT", headers, timeout: PUT_IDLE_TIMEOUT_MS }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error("the upload service stopped answering")));
    req.on("error", reject);
    (async () => {
      const reader = body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          // Backpressure: wait for the socket to drain before reading more.
          if (!req.write(value)) await new Promise((r) => req.once("drain", r));
        }
        req.end();
      } catch (err) {
        req.destroy(err as Error);
        reject(err);
      }
    })();
  });
}

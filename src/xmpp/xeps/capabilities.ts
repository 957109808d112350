/**
 * What the XMPP server offers, discovered once per session: disco#info on the server, disco#items on it, and
 * disco#info on each of its services (conference, upload, components…). The result is data that code consults
 * where it makes a choice, e.g. whether an XEP module is enabled.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { errorMessage } from "../../core/errors.ts";
import type { Negotiated } from "../session/client.ts";
import { type DiscoInfo, discoInfo, discoItems, formValue, type IqRequester } from "../protocol/disco.ts";
import { NS_MUC, NS_UPLOAD } from "../protocol/ns.ts";

const log = getLogger(["mmxmpp", "xmpp", "caps"]);

/** One service of the server (a disco#items entry) and what it answered to disco#info. */
export interface ServiceInfo {
  jid: string;
  /** The name the server gave the item. */
  name?: string;
  /** Absent when the service did not answer; see `error`. */
  info?: DiscoInfo;
  /** Why disco#info on the service failed: the stanza error condition, or a timeout. */
  error?: string;
}

/** What the server and its services offer. */
export interface Capabilities {
  /** The server's domain. */
  readonly domain: string;
  /** The server's own disco#info. */
  readonly server: DiscoInfo;
  /** Its services, in the order the server listed them. */
  readonly services: readonly ServiceInfo[];
  /**
   * Namespaces of the stream features offered on this connection (e.g. `http://jabber.org/features/iq-register`,
   * which Prosody offers only when in-band registration is allowed).
   */
  readonly streamFeatures: ReadonlySet<string>;
  /** True when the server itself (not one of its services) lists `feature` in its disco#info. */
  has(feature: string): boolean;
  /** The first service whose disco#info lists `feature`. */
  serviceWith(feature: string): ServiceInfo | undefined;
  /** The first conference (XEP-0045 MUC) service. */
  readonly muc?: string;
  /** The first XEP-0363 HTTP upload service and its size limit in bytes, when it states one. */
  readonly upload?: { jid: string; maxFileSize?: number };
}

/** Options of {@link discoverCapabilities}. */
export interface DiscoverOptions {
  /** Per-query timeout; a service that does not answer in time is recorded with an error. Default 5000. */
  timeoutMs?: number;
}

/** What {@link discoverCapabilities} needs of a client. */
export type DiscoveringClient = IqRequester & { negotiated?: Pick<Negotiated, "streamFeatures"> };

/** The last summary logged per client, so that a reconnect to an unchanged server logs it at debug only. */
const logged = new WeakMap<object, string>();

/**
 * Discovers what the server at `domain` offers, queries its services in parallel, and logs a one-line summary.
 * Rejects only when the server's own disco#info fails; a service that errors or times out is recorded in
 * {@link ServiceInfo.error}.
 *
 * @example
 * ```ts
 * const caps = await discoverCapabilities(client, "example.org");
 * if (caps.upload) console.log(`upload via ${caps.upload.jid}, up to ${caps.upload.maxFileSize} bytes`);
 * ```
 */
export async function discoverCapabilities(
  client: DiscoveringClient,
  domain: string,
  opts: DiscoverOptions = {},
): Promise<Capabilities> {
  const timeoutMs = opts.timeoutMs ?? 5_000;
  const [server, items] = await Promise.all([
    discoInfo(client, domain, timeoutMs).catch((err) => {
      throw new Error(`the server ${domain} did not answer service discovery: ${describeError(err)}`, {
        cause: err,
      });
    }),
    discoItems(client, domain, timeoutMs).catch((err) => {
      log.warn("The server {domain} did not list its services: {error}", {
        domain,
        error: describeError(err),
      });
      return [];
    }),
  ]);
  // An item with a node is a sub-node of an entity, not a service.
  const services = await Promise.all(
    items.filter((item) => item.node === undefined).map(async (item): Promise<ServiceInfo> => {
      try {
        return { jid: item.jid, name: item.name, info: await discoInfo(client, item.jid, timeoutMs) };
      } catch (err) {
        return { jid: item.jid, name: item.name, error: describeError(err) };
      }
    }),
  );
  const caps = capabilities(domain, server, services, client.negotiated?.streamFeatures ?? new Set());
  const summary = summarizeCapabilities(caps);
  if (logged.get(client) === summary) log.debug("XMPP server capabilities: {summary}", { summary });
  else log.info("XMPP server capabilities: {summary}", { summary });
  logged.set(client, summary);
  return caps;
}

/**
 * Builds {@link Capabilities} from discovered data (also for tests and fakes).
 *
 * @example
 * ```ts
 * const caps = capabilities("example.org", { identities: [], features: new Set(["urn:xmpp:ping"]), forms: [] }, []);
 * caps.has("urn:xmpp:ping"); // true
 * ```
 */
export function capabilities(
  domain: string,
  server: DiscoInfo,
  services: readonly ServiceInfo[],
  streamFeatures: ReadonlySet<string> = new Set(),
): Capabilities {
  const serviceWith = (feature: string) => services.find((s) => s.info?.features.has(feature));
  const muc = services.find((s) =>
    s.info?.identities.some((i) => i.category === "conference" && i.type === "text") ||
    s.info?.features.has(NS_MUC)
  );
  const uploadService = serviceWith(NS_UPLOAD);
  const maxFileSize = Number(formValue(uploadService?.info?.forms ?? [], NS_UPLOAD, "max-file-size"));
  return {
    domain,
    server,
    services,
    streamFeatures,
    has: (feature) => server.features.has(feature),
    serviceWith,
    muc: muc?.jid,
    upload: uploadService && {
      jid: uploadService.jid,
      maxFileSize: Number.isSafeInteger(maxFileSize) && maxFileSize > 0 ? maxFileSize : undefined,
    },
  };
}

/**
 * One line for the log: how many features the server lists, and each service with what it is.
 *
 * @example
 * ```ts
 * summarizeCapabilities(caps);
 * // "localhost: 9 features; services: conference.localhost (conference/text, MUC), upload.localhost (store/file, upload max 10485760 bytes)"
 * ```
 */
export function summarizeCapabilities(caps: Capabilities): string {
  const services = caps.services.map((s) => {
    if (!s.info) return `${s.jid} (no answer: ${s.error})`;
    const what = s.info.identities.map((i) => `${i.category}/${i.type}`);
    if (s.jid === caps.muc) what.push("MUC");
    if (s.jid === caps.upload?.jid) {
      what.push(caps.upload.maxFileSize ? `upload max ${caps.upload.maxFileSize} bytes` : "upload");
    }
    return what.length ? `${s.jid} (${what.join(", ")})` : s.jid;
  });
  return `${caps.domain}: ${caps.server.features.size} features; services: ${services.join(", ") || "none"}`;
}

function describeError(err: unknown): string {
  const e = err as { condition?: string; name?: string };
  if (e?.condition) return e.condition;
  if (e?.name === "TimeoutError") return "timed out";
  return errorMessage(err);
}

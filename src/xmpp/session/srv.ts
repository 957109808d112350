/**
 * XMPP server discovery by DNS SRV (RFC 6120 §3.2.1, XEP-0368): which hosts and ports serve a domain's clients.
 *
 * `_xmpps-client._tcp` records name direct-TLS ports and `_xmpp-client._tcp` records STARTTLS ports. Both sets are
 * merged and ordered by priority, then by weight (RFC 2782's weighted random choice); at equal priority direct TLS
 * comes first, as XEP-0368 suggests. Without any record, the domain itself on port 5222 is the fallback; a single
 * record with target "." says the service is not offered there.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { errorMessage } from "../../core/errors.ts";

const log = getLogger(["mmxmpp", "xmpp", "srv"]);

/** One place to connect to, as an `xmpp://` (STARTTLS) or `xmpps://` (direct TLS) URL. */
export interface ServiceCandidate {
  service: string;
  /** Where it came from, for logs and the doctor. */
  source: "srv" | "fallback";
}

/** Settings of {@link discoverServices}. */
export interface SrvOptions {
  /** The DNS server to ask (tests use a local one); the system resolver when absent. */
  nameServer?: { ipAddr: string; port?: number };
  /** Random numbers in [0, 1) for the weighted choice; `Math.random` when absent. */
  random?: () => number;
}

/** Thrown when the domain says by SRV that it offers no XMPP client service. */
export class NoXmppServiceError extends Error {
  constructor(domain: string) {
    super(`${domain} says in DNS (SRV target ".") that it offers no XMPP client service: set XMPP_SERVICE`);
    this.name = "NoXmppServiceError";
  }
}

interface Record {
  priority: number;
  weight: number;
  port: number;
  target: string;
  tls: boolean;
}

/**
 * The places to try, best first, for clients of `domain`.
 *
 * @example
 * ```ts
 * const [first] = await discoverServices("example.org");
 * // e.g. { service: "xmpps://xmpp.example.org:5223", source: "srv" }
 * ```
 */
export async function discoverServices(domain: string, opts: SrvOptions = {}): Promise<ServiceCandidate[]> {
  const [tls, plain] = await Promise.all([
    lookup(`_xmpps-client._tcp.${domain}`, true, opts),
    lookup(`_xmpp-client._tcp.${domain}`, false, opts),
  ]);
  const records = [...tls, ...plain];
  if (records.length === 0) return [{ service: `xmpp://${domain}:5222`, source: "fallback" }];
  const usable = records.filter((r) => r.target !== "" && r.target !== ".");
  if (usable.length === 0) throw new NoXmppServiceError(domain);
  const ordered = orderRecords(usable, opts.random ?? Math.random);
  return ordered.map((r) => ({
    service: `${r.tls ? "xmpps" : "xmpp"}://${r.target}:${r.port}`,
    source: "srv",
  }));
}

async function lookup(name: string, tls: boolean, opts: SrvOptions): Promise<Record[]> {
  try {
    const answers = await Deno.resolveDns(
      name,
      "SRV",
      opts.nameServer ? { nameServer: opts.nameServer } : {},
    );
    return answers.map((a) => ({ ...a, target: a.target.replace(/\.$/, "") || ".", tls }));
  } catch (err) {
    // NXDOMAIN and "no records" are the normal case for domains without SRV; anything else is worth a line.
    if (!(err instanceof Deno.errors.NotFound)) {
      log.warn("DNS SRV lookup of {name} failed: {error}", {
        name,
        error: errorMessage(err),
      });
    }
    return [];
  }
}

/** RFC 2782 ordering: by priority; within one, a weighted random order (direct TLS first on a tie). */
export function orderRecords<T extends { priority: number; weight: number; tls: boolean }>(
  records: readonly T[],
  random: () => number,
): T[] {
  const out: T[] = [];
  const priorities = [...new Set(records.map((r) => r.priority))].sort((a, b) => a - b);
  for (const priority of priorities) {
    for (const tls of [true, false]) {
      const group = records.filter((r) => r.priority === priority && r.tls === tls);
      while (group.length > 0) {
        const total = group.reduce((sum, r) => sum + r.weight, 0);
        let pick = 0;
        if (total > 0) {
          let point = random() * total;
          pick = group.findIndex((r) => (point -= r.weight) < 0);
          if (pick < 0) pick = group.length - 1;
        }
        out.push(group.splice(pick, 1)[0]);
      }
    }
  }
  return out;
}

/**
 * The service to connect to for clients of `domain`: the first SRV candidate that accepts a TCP connection, else
 * the first candidate (connecting to it is then retried like any unreachable server).
 *
 * @example
 * ```ts
 * const { service } = await chooseService("example.org"); // "xmpps://xmpp.example.org:5223"
 * ```
 */
export async function chooseService(
  domain: string,
  opts: SrvOptions & { probeMs?: number } = {},
): Promise<ServiceCandidate> {
  const candidates = await discoverServices(domain, opts);
  if (candidates[0].source === "fallback") {
    log.info("No XMPP SRV records for {domain}; using {service}", { domain, service: candidates[0].service });
    return candidates[0];
  }
  for (const candidate of candidates) {
    if (await reachable(candidate.service, opts.probeMs ?? 5_000)) {
      log.info("XMPP service for {domain} found by DNS SRV: {service}", {
        domain,
        service: candidate.service,
      });
      return candidate;
    }
    log.warn("XMPP SRV candidate {service} for {domain} is not reachable; trying the next", {
      domain,
      service: candidate.service,
    });
  }
  log.warn("No XMPP SRV candidate for {domain} is reachable now; will keep trying {service}", {
    domain,
    service: candidates[0].service,
  });
  return candidates[0];
}

async function reachable(service: string, timeoutMs: number): Promise<boolean> {
  const u = new URL(service);
  const timer = AbortSignal.timeout(timeoutMs);
  try {
    const conn = await Promise.race([
      Deno.connect({ hostname: u.hostname, port: Number(u.port) }),
      new Promise<never>((_, reject) => timer.addEventListener("abort", () => reject(timer.reason))),
    ]);
    conn.close();
    return true;
  } catch {
    return false;
  }
}

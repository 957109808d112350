/**
 * The doctor's look at the XMPP server's transport: a TCP connection, then TLS (STARTTLS for `xmpp://`, direct for
 * `xmpps://`) negotiated without rejecting the certificate, so that an untrusted one can be described instead of
 * only refused. The verdict on the certificate is the same as the bridge's (its CA list, the JID's domain).
 *
 * @module
 */
import net from "node:net";
import tls from "node:tls";
import { tlsConnectOptions, type TlsOptions } from "../xmpp/session/client.ts";
import { StepFailure } from "./report.ts";
import { NS_TLS } from "../xmpp/protocol/ns.ts";

/** Where to connect, from `XMPP_SERVICE`. */
export interface Endpoint {
  host: string;
  port: number;
  /** True for `xmpps://` (TLS from the first byte). */
  directTls: boolean;
}

/** Splits `xmpp://host:port` / `xmpps://host:port`. */
export function endpointOf(service: string): Endpoint {
  const u = new URL(service);
  const directTls = u.protocol === "xmpps:";
  return {
    host: u.hostname.replace(/^\[|\]$/g, ""),
    port: Number(u.port || (directTls ? 5223 : 5222)),
    directTls,
  };
}

/**
 * Opens a TCP connection; throws a {@link StepFailure} naming the cause (refused, unknown host, timeout).
 *
 * @example
 * ```ts
 * const socket = await connectTcp(endpointOf("xmpp://chat.example.org:5222"), "XMPP_SERVICE");
 * ```
 */
export function connectTcp(ep: Endpoint, setting: string, timeoutMs = 10_000): Promise<net.Socket> {
  const where = `${ep.host}:${ep.port}`;
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: ep.host, port: ep.port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new StepFailure(`no TCP connection to ${where} within ${timeoutMs / 1000} s`, firewallFix(setting)),
      );
    }, timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once("error", (err: Error & { code?: string }) => {
      clearTimeout(timer);
      socket.destroy();
      reject(
        err.code === "ECONNREFUSED"
          ? new StepFailure(
            `${where} refused the connection`,
            `check ${setting}: is the XMPP server running and listening on ${where}?`,
          )
          : err.code === "ENOTFOUND" || err.code === "EAI_AGAIN"
          ? new StepFailure(
            `cannot resolve ${ep.host} (${err.code})`,
            `check ${setting} and DNS for ${ep.host}`,
          )
          : new StepFailure(`cannot connect to ${where}: ${err.message}`, firewallFix(setting)),
      );
    });
  });
}

function firewallFix(setting: string): string {
  return `check ${setting}, and that no firewall blocks this host from reaching the server`;
}

/** What the TLS step learnt. */
export interface TlsReport {
  protocol: string;
  via: "STARTTLS" | "direct TLS";
  /** The certificate as presented. */
  certificate: CertificateInfo;
  /** Why the bridge would refuse the certificate; undefined when it is accepted. */
  problem?: CertificateProblem;
  /** What is wrong with a certificate that is accepted only because checking is turned off. */
  unchecked?: string;
}

/** The parts of a certificate a person checks. */
export interface CertificateInfo {
  subject: string;
  issuer: string;
  /** subjectAltName, e.g. `DNS:example.org, DNS:conference.example.org`. */
  names: string;
  validTo: Date;
  selfSigned: boolean;
  fingerprint256: string;
}

/**
 * One line about a certificate: subject, names, issuer and expiry.
 *
 * @example
 * ```ts
 * certificateSummary(report.certificate);
 * // "certificate CN=example.org for DNS:example.org, issuer CN=R11, O=Let's Encrypt, expires 2026-01-31 (in 70 days)"
 * ```
 */
export function certificateSummary(c: CertificateInfo, now = Date.now()): string {
  const days = Math.floor((c.validTo.getTime() - now) / 86_400_000);
  const soon = days < 14 ? ", renew it soon" : "";
  return `certificate ${c.subject} for ${c.names || "(no names)"}, ` +
    `issuer ${c.selfSigned ? "itself (self-signed)" : c.issuer}, ` +
    `expires ${c.validTo.toISOString().slice(0, 10)} (in ${days} days${soon})`;
}

/** Why a certificate is not accepted, and what to do. */
export interface CertificateProblem {
  message: string;
  fix: string;
}

/**
 * Negotiates TLS on `socket` (after STARTTLS unless `ep.directTls`) and describes the certificate and whether the
 * bridge would accept it for `domain` with `opts`. Closes the socket. Throws a {@link StepFailure} when no TLS
 * session comes about (STARTTLS not offered, the stream refused, the handshake failed).
 */
export async function probeTls(
  socket: net.Socket,
  ep: Endpoint,
  domain: string,
  opts: TlsOptions,
  timeoutMs = 10_000,
): Promise<TlsReport> {
  const timer = setTimeout(
    () => socket.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)),
    timeoutMs,
  );
  try {
    if (!ep.directTls) await startTls(socket, ep, domain);
    const secure = await handshake(socket, domain, opts).catch(async (err) => {
      // A TLS handshake against a plain XMPP port fails on its first answer; name the scheme that port speaks.
      if (ep.directTls && await answersPlainXmpp(ep, domain)) throw wrongScheme(ep, "STARTTLS");
      throw err;
    });
    try {
      return describe(secure, ep, domain, opts);
    } finally {
      secure.destroy();
    }
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
}

/** `host:port`, with brackets around an IPv6 address. */
function hostPort(ep: Endpoint): string {
  return `${ep.host.includes(":") ? `[${ep.host}]` : ep.host}:${ep.port}`;
}

/**
 * The failure for a port that speaks the other way of starting TLS than `XMPP_SERVICE` says, with the service URL
 * (and `--server` value) to use instead.
 */
function wrongScheme(
  ep: Endpoint,
  speaks: "STARTTLS" | "direct TLS",
  /** What the port did with the stream header, for "direct TLS". */
  seen = "answered the XMPP stream header with TLS",
): StepFailure {
  const where = hostPort(ep);
  return speaks === "STARTTLS"
    ? new StepFailure(
      `${where} answered the TLS handshake in plain XMPP (<stream:stream>), not with TLS: it is a STARTTLS port, ` +
        "and xmpps:// expects direct TLS",
      `this port speaks STARTTLS: use xmpp://${where} in XMPP_SERVICE (or --server ${where}); ` +
        "xmpps:// is for a direct-TLS port (usually 5223)",
    )
    : new StepFailure(
      `${where} ${seen}: it is a direct-TLS port, and xmpp:// (or HOST:PORT) ` +
        "expects plain XMPP with STARTTLS",
      `this port speaks direct TLS: use xmpps://${where} in XMPP_SERVICE (or --server xmpps://${where}); ` +
        "xmpp:// is for a STARTTLS port (usually 5222)",
    );
}

const STREAM_HEADER = (domain: string) =>
  `<?xml version='1.0'?><stream:stream to='${escapeAttr(domain)}' version='1.0' xml:lang='en' ` +
  `xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`;

/** True when `bytes` start a TLS record (alert or handshake, version 3.x): what a direct-TLS port sends back. */
function isTlsRecord(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && (bytes[0] === 0x15 || bytes[0] === 0x16) && bytes[1] === 0x03;
}

/** Whether `ep` answers a plain XMPP stream header with XML, on a fresh connection (a diagnosis after a failure). */
function answersPlainXmpp(ep: Endpoint, domain: string, timeoutMs = 3_000): Promise<boolean> {
  return new Promise((resolve) => {
    let text = "";
    const socket = net.connect({ host: ep.host, port: ep.port }, () => socket.write(STREAM_HEADER(domain)));
    const done = (answer: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on("data", (chunk: Uint8Array) => {
      text += new TextDecoder().decode(chunk);
      if (/<\?xml|<stream:stream/.test(text)) done(true);
    });
    socket.on("error", () => done(false));
    socket.on("close", () => done(false));
  });
}

/** Whether `ep` completes a TLS handshake on a fresh connection (a diagnosis after a failure). */
function answersTls(ep: Endpoint, domain: string, timeoutMs = 3_000): Promise<boolean> {
  return new Promise((resolve) => {
    const secure = tls.connect({
      host: ep.host,
      port: ep.port,
      servername: domain,
      rejectUnauthorized: false,
    });
    const done = (answer: boolean) => {
      clearTimeout(timer);
      secure.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    secure.once("secureConnect", () => done(true));
    secure.once("error", () => done(false));
    secure.once("close", () => done(false));
  });
}

/** Opens a stream, checks that STARTTLS is offered and asks for it. */
async function startTls(socket: net.Socket, ep: Endpoint, domain: string): Promise<void> {
  const reader = new StreamReader(
    socket,
    (first) => isTlsRecord(first) ? wrongScheme(ep, "direct TLS") : undefined,
  );
  try {
    socket.write(STREAM_HEADER(domain));
    const features = await reader.until(/<\/stream:features>|<stream:features\s*\/>|<\/stream:error>/)
      .catch(async (err) => {
        // Closed without a word: a direct-TLS port may do that to a plain stream header instead of an alert.
        if (reader.silent && await answersTls(ep, domain)) {
          throw wrongScheme(
            ep,
            "direct TLS",
            "closed the connection on the XMPP stream header without a word, and completes a TLS handshake",
          );
        }
        throw err;
      });
    const streamError = /<stream:error>\s*<([a-z-]+)/.exec(features)?.[1];
    if (streamError) {
      throw streamError === "host-unknown"
        ? new StepFailure(
          `the server does not serve the domain ${domain} (host-unknown)`,
          `XMPP_JID's domain must be a virtual host of that server: check XMPP_JID and XMPP_SERVICE`,
        )
        : new StepFailure(`the server closed the stream (${streamError})`, "check the XMPP server's log");
    }
    if (!features.includes(NS_TLS)) {
      throw new StepFailure(
        "the server offers no STARTTLS: the session would be unencrypted",
        "give the XMPP server a certificate for its domain (Prosody: https://prosody.im/doc/certificates), " +
          "or use xmpps:// in XMPP_SERVICE if it speaks direct TLS on another port",
      );
    }
    socket.write(`<starttls xmlns='${NS_TLS}'/>`);
    const answer = await reader.until(/<proceed\b[^>]*>|<failure\b[^>]*>/);
    if (!/<proceed\b/.test(answer)) {
      throw new StepFailure(
        "the server refused STARTTLS",
        "check the XMPP server's TLS configuration and log",
      );
    }
  } finally {
    reader.stop();
  }
}

function handshake(socket: net.Socket, domain: string, opts: TlsOptions): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    // Accept any certificate here: the point is to see it; the verdict comes from `authorized` below.
    const secure = tls.connect({ ...tlsConnectOptions(domain, opts), socket, rejectUnauthorized: false });
    secure.once("secureConnect", () => resolve(secure));
    secure.once("error", (err: Error) => {
      secure.destroy();
      reject(
        new StepFailure(`TLS handshake failed: ${err.message}`, "check the XMPP server's TLS configuration"),
      );
    });
    socket.once("close", () => reject(new StepFailure("the server closed the connection during TLS")));
  });
}

function describe(secure: tls.TLSSocket, ep: Endpoint, domain: string, opts: TlsOptions): TlsReport {
  const cert = secure.getPeerCertificate(true);
  const certificate: CertificateInfo = {
    subject: dn(cert.subject),
    issuer: dn(cert.issuer),
    names: cert.subjectaltname ?? "",
    validTo: new Date(cert.valid_to),
    selfSigned: cert.issuerCertificate === cert ||
      (cert.fingerprint256 === cert.issuerCertificate?.fingerprint256),
    fingerprint256: cert.fingerprint256,
  };
  const chainError = secure.authorized ? undefined : String(secure.authorizationError ?? "not trusted");
  const hostError = tls.checkServerIdentity(domain, cert);
  const problems: string[] = [];
  if (chainError && !/ALTNAME/.test(chainError)) problems.push(chainProblem(chainError, certificate));
  if (hostError) problems.push(`it is for ${certificate.names || certificate.subject}, not ${domain}`);
  const report: TlsReport = {
    protocol: secure.getProtocol() ?? "TLS",
    via: ep.directTls ? "direct TLS" : "STARTTLS",
    certificate,
  };
  if (problems.length === 0) return report;
  if (opts.insecureSkipVerify) return { ...report, unchecked: problems.join("; ") };
  const selfSigned = chainError !== undefined && /SELF_SIGNED/.test(chainError);
  const fix = hostError && problems.length === 1
    ? `the certificate must name XMPP_JID's domain ${domain}: get one for ${domain}, or check XMPP_JID`
    : selfSigned
    ? "trust it with XMPP_CA_FILE=/path/to/its-certificate.pem, or (for a test only) use --insecure-skip-verify " +
      "/ XMPP_TLS_INSECURE_SKIP_VERIFY=true"
    : /EXPIRED|NOT_YET_VALID/.test(chainError ?? "")
    ? "renew the XMPP server's certificate (and check this host's clock)"
    : "set XMPP_CA_FILE to the issuing CA's certificate, or install the full chain on the server";
  report.problem = { message: `the certificate is not accepted: ${problems.join("; ")}`, fix };
  return report;
}

function chainProblem(code: string, cert: CertificateInfo): string {
  if (/SELF_SIGNED/.test(code)) return `it is self-signed (${cert.subject}) and not trusted (${code})`;
  if (code === "CERT_HAS_EXPIRED") return `it expired on ${cert.validTo.toISOString().slice(0, 10)}`;
  if (code === "CERT_NOT_YET_VALID") return "it is not valid yet";
  if (/ISSUER|LEAF_SIGNATURE|UNTRUSTED/.test(code)) {
    return `its issuer ${cert.issuer} is not trusted (${code})`;
  }
  return `verification failed (${code})`;
}

/** `CN=example.org, O=Example` from a parsed distinguished name. */
function dn(name: tls.Certificate | undefined): string {
  if (!name) return "(none)";
  return Object.entries(name as unknown as Record<string, string | string[]>).map(([k, v]) =>
    `${k}=${Array.isArray(v) ? v.join("+") : v}`
  ).join(", ") || "(none)";
}

function escapeAttr(s: string): string {
  return s.replace(/[&<>'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Collects text from a socket until a pattern shows up. */
class StreamReader {
  private buffer = "";
  private wake = () => {};
  private failure?: Error;
  // One decoder in stream mode: a character cut across two reads must not become U+FFFD.
  private readonly decoder = new TextDecoder();
  /** What `sniff` made of the first bytes: not XMPP, so fail before matching anything. */
  private rejected?: Error;
  /** True until the server sends anything. */
  silent = true;
  private readonly onData = (chunk: Uint8Array) => {
    if (this.silent) {
      this.silent = false;
      // Not XML at all: fail at once instead of waiting for a pattern that cannot come.
      this.rejected = this.sniff(chunk);
    }
    this.buffer += this.decoder.decode(chunk, { stream: true });
    this.wake();
  };
  private readonly onEnd = (err?: Error) => {
    this.failure ??= err instanceof Error ? err : new StepFailure("the server closed the connection");
    this.wake();
  };

  /** `sniff` looks at the server's first bytes and returns the error to fail with when they are not XMPP. */
  constructor(
    private readonly socket: net.Socket,
    private readonly sniff: (first: Uint8Array) => Error | undefined = () => undefined,
  ) {
    socket.on("data", this.onData);
    socket.on("error", this.onEnd);
    socket.on("close", this.onEnd);
  }

  /** Resolves with what was read up to and including `pattern`, and keeps the rest. */
  async until(pattern: RegExp): Promise<string> {
    for (;;) {
      if (this.rejected) throw this.rejected;
      const m = pattern.exec(this.buffer);
      if (m) {
        const end = m.index + m[0].length;
        const text = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end);
        return text;
      }
      if (this.failure) throw this.failure;
      await new Promise<void>((r) => this.wake = r);
    }
  }

  /** Detaches from the socket (before it is handed to TLS). */
  stop(): void {
    this.socket.off("data", this.onData);
    this.socket.off("error", this.onEnd);
    this.socket.off("close", this.onEnd);
  }
}

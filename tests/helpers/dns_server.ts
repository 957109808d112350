/**
 * A tiny authoritative DNS server on loopback UDP for tests: answers SRV queries from a table, NXDOMAIN otherwise.
 * Only what resolvers send for one question is understood (RFC 1035 §4.1).
 *
 * @module
 */
import dgram from "node:dgram";
import { Buffer } from "node:buffer";

/** One SRV record to serve. */
export interface SrvAnswer {
  priority: number;
  weight: number;
  port: number;
  /** Host name, or "." for "no service". */
  target: string;
}

/** A running server; `queries` lists the names asked, in order. */
export interface DnsServer {
  nameServer: { ipAddr: string; port: number };
  queries: string[];
  close(): Promise<void>;
}

/** Starts a server answering SRV queries for the names in `records` (lowercase, without a final dot). */
export async function startDnsServer(records: Record<string, SrvAnswer[]>): Promise<DnsServer> {
  const socket = dgram.createSocket("udp4");
  const queries: string[] = [];
  socket.on("message", (msg: Buffer, rinfo: { address: string; port: number }) => {
    const reply = answer(msg, records, queries);
    if (reply) socket.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  return {
    nameServer: { ipAddr: "127.0.0.1", port: socket.address().port },
    queries,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

function answer(msg: Buffer, records: Record<string, SrvAnswer[]>, queries: string[]): Buffer | undefined {
  if (msg.length < 12) return undefined;
  const labels: string[] = [];
  let at = 12;
  while (at < msg.length && msg[at] !== 0) {
    const len = msg[at];
    labels.push(msg.subarray(at + 1, at + 1 + len).toString("ascii"));
    at += len + 1;
  }
  const questionEnd = at + 5; // zero byte, QTYPE, QCLASS
  if (questionEnd > msg.length) return undefined;
  const qtype = msg.readUInt16BE(at + 1);
  const name = labels.join(".").toLowerCase();
  queries.push(name);
  const found = qtype === 33 ? records[name] : undefined;
  const header = Buffer.alloc(12);
  msg.copy(header, 0, 0, 2); // id
  header.writeUInt16BE(0x8400 | (msg.readUInt16BE(2) & 0x0100) | (found ? 0 : 3), 2); // QR, AA, RD, RCODE
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(found?.length ?? 0, 6);
  const parts = [header, msg.subarray(12, questionEnd)];
  for (const r of found ?? []) {
    const target = encodeName(r.target);
    const rr = Buffer.alloc(2 + 2 + 2 + 4 + 2 + 6);
    rr.writeUInt16BE(0xc00c, 0); // pointer to the question's name
    rr.writeUInt16BE(33, 2);
    rr.writeUInt16BE(1, 4);
    rr.writeUInt32BE(60, 6);
    rr.writeUInt16BE(6 + target.length, 10);
    rr.writeUInt16BE(r.priority, 12);
    rr.writeUInt16BE(r.weight, 14);
    rr.writeUInt16BE(r.port, 16);
    parts.push(rr, target);
  }
  return Buffer.concat(parts);
}

function encodeName(name: string): Buffer {
  if (name === "." || name === "") return Buffer.from([0]);
  const parts = name.replace(/\.$/, "").split(".").map((l) =>
    Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])
  );
  return Buffer.concat([...parts, Buffer.from([0])]);
}

/**
 * `deno task bench` section: the CPU one SCRAM-SHA-1 login costs the bridge (what every ghost pays at each login),
 * with the library's key derivation and with the native one the bridge uses, in the same run, at Prosody's 10,000
 * iterations. The exchange is played against RFC 5802's server messages, so no server's CPU is counted.
 *
 * @module
 */
import process from "node:process";
import ScramSha1 from "sasl-scram-sha-1";
import { NativeScramSha1 } from "../src/xmpp/session/scram.ts";

/** Prosody 0.12's default iteration count for SCRAM-SHA-1. */
export const PROSODY_ITERATIONS = 10_000;

type Mechanism = { response(cred: unknown): Promise<string> | string; challenge(chal: string): unknown };
type MechanismClass = new (opts?: { genNonce?: () => string }) => Mechanism;

/** One client side of a login: client-first, the server's challenge, client-final; CPU ms spent. */
async function oneLogin(Mech: MechanismClass, iterations: number): Promise<number> {
  const before = process.cpuUsage();
  const nonce = crypto.randomUUID();
  const mech = new Mech({ genNonce: () => nonce });
  const cred = { username: "ghost", password: "a long random ghost password" };
  await mech.response(cred);
  mech.challenge(`r=${nonce}server,s=QSXCR+Q6sek8bf92,i=${iterations}`);
  await mech.response(cred);
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Median CPU ms per login, library vs native, `runs` logins each (interleaved, so load hits both alike). */
export async function benchScram(runs = 5): Promise<Record<string, number>> {
  const library: number[] = [];
  const native: number[] = [];
  for (let i = 0; i < runs; i++) {
    library.push(await oneLogin(ScramSha1 as unknown as MechanismClass, PROSODY_ITERATIONS));
    native.push(await oneLogin(NativeScramSha1, PROSODY_ITERATIONS));
  }
  const lib = median(library);
  const nat = median(native);
  return {
    iterations: PROSODY_ITERATIONS,
    runs,
    library_cpu_ms: Math.round(lib * 10) / 10,
    native_cpu_ms: Math.round(nat * 10) / 10,
    speedup: Math.round(lib / nat),
  };
}

if (import.meta.main) console.log(await benchScram());

/**
 * SCRAM-SHA-1 (RFC 5802) with the key derivation done natively: the `sasl-scram-sha-1` mechanism (the one
 * `@xmpp/sasl-scram-sha-1` registers) computes `Hi()` as thousands of awaited WebCrypto HMAC calls, about 2 s of CPU
 * per login at Prosody's 10,000 iterations, which is what made bringing ghosts online cost a CPU-second each. Here
 * `Hi()` is one WebCrypto PBKDF2-HMAC-SHA-1 call (they are the same function, RFC 5802 §2.2), about 2 ms, handed to
 * the library through its own cache of derived keys (`cred.salt` + `cred.saltedPassword`); every message of the
 * exchange is still the library's.
 *
 * @module
 */
import ScramSha1 from "sasl-scram-sha-1";

/**
 * Most PBKDF2 iterations a server may ask for. RFC 5802 sets no bound; a hostile or broken server could make each
 * login burn CPU for minutes. Prosody uses 10,000, ejabberd 4,096; OWASP's highest recommendation for PBKDF2-SHA-1
 * is 1,300,000.
 */
export const MAX_SCRAM_ITERATIONS = 2_000_000;

/** What the mechanism keeps between `challenge` and `response` (fields of the library's mechanism). */
interface ScramState {
  _stage: string;
  _salt?: Uint8Array;
  _iterationCount?: number;
}

/** Credentials as `@xmpp/sasl` hands them to a mechanism. */
interface ScramCredentials {
  password?: string;
  salt?: Uint8Array;
  saltedPassword?: Uint8Array;
  [key: string]: unknown;
}

/** The library's mechanism, as this module uses it. */
interface ScramMechanism {
  response(cred: ScramCredentials): Promise<string>;
  challenge(chal: string): unknown;
}

/** The library's class; `genNonce` makes the client nonce (tests fix it to replay RFC 5802's example). */
const LibraryScramSha1 = ScramSha1 as unknown as new (opts?: { genNonce?: () => string }) => ScramMechanism;

/** The library's SCRAM-SHA-1 mechanism, with `SaltedPassword` derived natively. Register it with `saslFactory.use`. */
export class NativeScramSha1 extends LibraryScramSha1 {
  override async response(cred: ScramCredentials): Promise<string> {
    const state = this as unknown as ScramState;
    if (state._stage === "challenge" && state._salt && state._iterationCount !== undefined) {
      const iterations = state._iterationCount;
      if (!Number.isSafeInteger(iterations) || iterations < 1 || iterations > MAX_SCRAM_ITERATIONS) {
        throw new Error(
          `the server asked for ${iterations} SCRAM iterations (at most ${MAX_SCRAM_ITERATIONS} are accepted)`,
        );
      }
      const saltedPassword = await saltedPasswordOf(cred.password ?? "", state._salt, iterations);
      cred = { ...cred, salt: state._salt, saltedPassword };
    }
    return await super.response(cred);
  }
}

/**
 * `Hi(password, salt, iterations)` of RFC 5802: PBKDF2 with HMAC-SHA-1 and a 20-byte output. The password's bytes
 * are its UTF-8, as the library uses them.
 */
export async function saltedPasswordOf(
  password: string,
  salt: Uint8Array,
  iterations: number,
): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(password), "PBKDF2", false, [
    "deriveBits",
  ]);
  const bits = await crypto.subtle.deriveBits(
    { name: "PBKDF2", hash: "SHA-1", salt: salt as BufferSource, iterations },
    key,
    160,
  );
  return new Uint8Array(bits);
}

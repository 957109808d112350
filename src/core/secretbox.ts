/**
 * Encryption of secrets at rest (ghost passwords, Mattermost puppets' access tokens) with AES-256-GCM from WebCrypto.
 *
 * The key is derived from `BRIDGE_SECRET_KEY` with PBKDF2-SHA-256. Without a key, secrets are stored as they are
 * and marked so; a store written with a key cannot be read without the same key.
 *
 * @module
 */

/** A secret as stored in KV. */
export type StoredSecret =
  | { alg: "aes-256-gcm"; iv: string; data: string }
  | { alg: "none"; data: string };

const SALT = new TextEncoder().encode("mmxmpp/ghost-passwords/v1");
const ITERATIONS = 200_000;

/**
 * Seals and opens secrets.
 *
 * @example
 * ```ts
 * const box = await SecretBox.create("a long random key from openssl rand");
 * const stored = await box.seal("hunter2");
 * await box.open(stored); // "hunter2"
 * ```
 */
export class SecretBox {
  private constructor(private readonly key: CryptoKey | null) {}

  /** A box for `secretKey`; without one, secrets are stored unencrypted. */
  static async create(secretKey?: string): Promise<SecretBox> {
    if (!secretKey) return new SecretBox(null);
    const material = await crypto.subtle.importKey(
      "raw",
      new TextEncoder().encode(secretKey),
      "PBKDF2",
      false,
      [
        "deriveKey",
      ],
    );
    const key = await crypto.subtle.deriveKey(
      { name: "PBKDF2", hash: "SHA-256", salt: SALT, iterations: ITERATIONS },
      material,
      { name: "AES-GCM", length: 256 },
      false,
      ["encrypt", "decrypt"],
    );
    return new SecretBox(key);
  }

  /** True when secrets are encrypted. */
  get encrypting(): boolean {
    return this.key !== null;
  }

  /** Seals `plaintext` for storage. */
  async seal(plaintext: string): Promise<StoredSecret> {
    if (!this.key) return { alg: "none", data: plaintext };
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const data = await crypto.subtle.encrypt(
      { name: "AES-GCM", iv },
      this.key,
      new TextEncoder().encode(plaintext),
    );
    return { alg: "aes-256-gcm", iv: toBase64(iv), data: toBase64(new Uint8Array(data)) };
  }

  /** Opens a stored secret. Throws an error that says which key setting is wrong. */
  async open(stored: StoredSecret): Promise<string> {
    if (stored.alg === "none") return stored.data;
    if (!this.key) {
      throw new Error(
        "a stored secret (a ghost password or a puppet's token) is encrypted but BRIDGE_SECRET_KEY is not set: " +
          "set the key it was stored with",
      );
    }
    try {
      const plain = await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: fromBase64(stored.iv) },
        this.key,
        fromBase64(stored.data),
      );
      return new TextDecoder().decode(plain);
    } catch {
      throw new Error(
        "a stored secret (a ghost password or a puppet's token) cannot be decrypted: BRIDGE_SECRET_KEY is not " +
          "the key it was stored with",
      );
    }
  }
}

/** A random password of `bytes` random bytes, base64url without padding. */
export function randomPassword(bytes = 32): string {
  return toBase64(crypto.getRandomValues(new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
}

function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function fromBase64(text: string): Uint8Array<ArrayBuffer> {
  const raw = atob(text);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

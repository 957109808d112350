/**
 * TLS material for tests: a self-signed server certificate, as a server nobody configured a CA for presents.
 *
 * @module
 */

/**
 * A self-signed certificate for localhost and 127.0.0.1 (not a CA), made with openssl in `dir`.
 *
 * @example
 * ```ts
 * const { cert, key } = await selfSignedCert(dir);
 * Deno.serve({ hostname: "127.0.0.1", port: 0, cert, key }, () => new Response());
 * ```
 */
export async function selfSignedCert(dir: string): Promise<{ cert: string; key: string }> {
  const { success, stderr } = await new Deno.Command("openssl", {
    args: [
      ..."req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost".split(" "),
      ...["-keyout", `${dir}/key.pem`, "-out", `${dir}/cert.pem`],
      ...["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
      ...["-addext", "basicConstraints=critical,CA:FALSE"],
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!success) throw new Error(`openssl failed: ${new TextDecoder().decode(stderr)}`);
  return { cert: await Deno.readTextFile(`${dir}/cert.pem`), key: await Deno.readTextFile(`${dir}/key.pem`) };
}

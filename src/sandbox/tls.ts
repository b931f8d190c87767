/**
 * A certificate per sandbox, made with the `openssl` CLI: a small CA and a
 * server certificate for 127.0.0.1/localhost signed by it, so clients can
 * trust the CA file or pin the server certificate's SHA-256 fingerprint,
 * as they would with a real Proxmox node.
 */
import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** The files and facts of a sandbox's TLS set-up. */
export interface SandboxTls {
  key: string;
  cert: string;
  caPem: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  /** SHA-256 of the server certificate, colon-separated upper-case hex, as Proxmox shows it. */
  fingerprint: string;
}

/** Makes a CA and a server certificate under `dir` (created 0700; keys 0600). */
export async function generateTls(dir: string): Promise<SandboxTls> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const f = (name: string): string => join(dir, name);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await run("openssl", [
    "req", "-x509", ...ec, "-keyout", f("ca.key"), "-out", f("ca.pem"), "-days", "3650",
    "-subj", "/O=homelab sandbox/CN=homelab sandbox CA",
    "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  await chmod(f("ca.key"), 0o600);
  await run("openssl", ["req", ...ec, "-keyout", f("server.key"), "-out", f("server.csr"), "-subj", "/O=homelab sandbox/CN=127.0.0.1"]);
  await chmod(f("server.key"), 0o600);
  await writeFile(
    f("server.ext"),
    [
      "basicConstraints=CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
      "",
    ].join("\n"),
  );
  await run("openssl", [
    "x509", "-req", "-in", f("server.csr"), "-CA", f("ca.pem"), "-CAkey", f("ca.key"), "-CAcreateserial",
    "-out", f("server.pem"), "-days", "825", "-sha256", "-extfile", f("server.ext"),
  ]);
  const [key, cert, caPem] = await Promise.all([readFile(f("server.key"), "utf8"), readFile(f("server.pem"), "utf8"), readFile(f("ca.pem"), "utf8")]);
  return { key, cert, caPem, caFile: f("ca.pem"), certFile: f("server.pem"), keyFile: f("server.key"), fingerprint: new X509Certificate(cert).fingerprint256 };
}

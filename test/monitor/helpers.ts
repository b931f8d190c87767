import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { IncomingMessage, RequestListener, Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A self-signed certificate for localhost / 127.0.0.1, made with the openssl CLI. */
export interface SelfSigned {
  key: string;
  cert: string;
  certFile: string;
  /** SHA-256 fingerprint, `AB:CD:...`. */
  fingerprint: string;
}

let cached: SelfSigned | undefined;

/** Makes (once per process) a self-signed certificate with the openssl CLI. */
export function selfSigned(): SelfSigned {
  if (cached) return cached;
  const dir = mkdtempSync(join(tmpdir(), "homelab-monitor-tls-"));
  const keyFile = join(dir, "key.pem");
  const certFile = join(dir, "cert.pem");
  execFileSync(
    "openssl",
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", keyFile, "-out", certFile, "-days", "2", "-subj", "/CN=homelab-monitor-test", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
    { stdio: "ignore" },
  );
  const cert = readFileSync(certFile, "utf8");
  cached = { key: readFileSync(keyFile, "utf8"), cert, certFile, fingerprint: new X509Certificate(cert).fingerprint256 };
  return cached;
}

/** A request a test server saw. */
export interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: string;
}

/** A local HTTP(S) server on 127.0.0.1 with a port chosen by the system. */
export interface TestServer {
  url: string;
  port: number;
  seen: Seen[];
  server: Server;
  close(): Promise<void>;
}

/** Starts a server on loopback; the handler gets the request with its body read. */
export async function startServer(handler: (req: Seen, res: Parameters<RequestListener>[1]) => void, o: { tls?: SelfSigned } = {}): Promise<TestServer> {
  const seen: Seen[] = [];
  const listener: RequestListener = (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const s: Seen = { method: req.method ?? "GET", url: req.url ?? "/", headers: req.headers, body: Buffer.concat(chunks).toString("utf8") };
      seen.push(s);
      handler(s, res);
    });
  };
  const server: Server = o.tls ? createHttpsServer({ key: o.tls.key, cert: o.tls.cert }, listener) : createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${o.tls ? "https" : "http"}://127.0.0.1:${port}`,
    port,
    seen,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A port nothing listens on (bound and released). */
export async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

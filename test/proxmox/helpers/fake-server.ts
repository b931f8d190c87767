/**
 * A small HTTPS server for protocol edge cases the sandbox cannot produce on
 * demand (a reason phrase of our choosing, a connection dropped mid-body, a
 * certificate of our own). Listens on loopback only.
 */
import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:https";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";

export interface TestCert {
  key: string;
  cert: string;
  certFile: string;
  /** SHA-256, colon hex uppercase. */
  fingerprint: string;
}

const certs = new Map<string, TestCert>();

/** A throwaway self-signed certificate for localhost / 127.0.0.1 (made once per name and process). */
export function testCert(name = "default"): TestCert {
  const cached = certs.get(name);
  if (cached) return cached;
  const dir = mkdtempSync(join(tmpdir(), "homelab-proxmox-test-"));
  const keyFile = join(dir, "key.pem");
  const certFile = join(dir, "cert.pem");
  execFileSync(
    "openssl",
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", keyFile, "-out", certFile, "-days", "2", "-subj", `/CN=localhost-${name}`, "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
    { stdio: "ignore" },
  );
  const cert = readFileSync(certFile, "utf8");
  const made: TestCert = { key: readFileSync(keyFile, "utf8"), cert, certFile, fingerprint: new X509Certificate(cert).fingerprint256 };
  certs.set(name, made);
  return made;
}

/** A request as the fake server saw it. */
export interface SeenRequest {
  method: string;
  /** Path without the query, below /api2/json. */
  path: string;
  query: URLSearchParams;
  /** Form body, decoded. */
  form: URLSearchParams;
  rawBody: string;
  headers: IncomingMessage["headers"];
  sessionReused: boolean;
}

/** What the handler answers. */
export type FakeReply =
  | { status?: number; reason?: string; body?: unknown; rawBody?: string; headers?: Record<string, string> }
  | "drop"
  | "drop-mid-body";

export interface FakeServer {
  url: string;
  requests: SeenRequest[];
  /** Requests per "METHOD /path". */
  count(method: string, path: string): number;
  close(): Promise<void>;
}

/** Starts the fake server; `handler` answers each request. */
export async function startFakeServer(handler: (req: SeenRequest) => FakeReply | Promise<FakeReply>, options: { cert?: TestCert } = {}): Promise<FakeServer> {
  const cert = options.cert ?? testCert();
  const requests: SeenRequest[] = [];
  const server: Server = createServer({ key: cert.key, cert: cert.cert }, (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      void (async () => {
        const url = new URL(req.url ?? "/", "https://localhost");
        const rawBody = Buffer.concat(chunks).toString("utf8");
        const seen: SeenRequest = {
          method: req.method ?? "GET",
          path: url.pathname.replace(/^\/api2\/json/, ""),
          query: url.searchParams,
          form: new URLSearchParams(rawBody),
          rawBody,
          headers: req.headers,
          sessionReused: (req.socket as TLSSocket).isSessionReused(),
        };
        requests.push(seen);
        const reply = await handler(seen);
        if (reply === "drop") {
          req.socket.destroy();
          return;
        }
        if (reply === "drop-mid-body") {
          res.writeHead(200, { "content-type": "application/json", "content-length": "200" });
          res.write('{"data":{"vers');
          setTimeout(() => req.socket.destroy(), 5);
          return;
        }
        const text = reply.rawBody ?? (reply.body === undefined ? "" : JSON.stringify(reply.body));
        const status = reply.status ?? 200;
        res.writeHead(status, reply.reason ?? (status === 200 ? "OK" : "Error"), {
          "content-type": "application/json;charset=UTF-8",
          "content-length": String(Buffer.byteLength(text)),
          ...reply.headers,
        });
        res.end(text);
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}`,
    requests,
    count: (method, path) => requests.filter((r) => r.method === method && r.path === path).length,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A well-formed API token for fakes. */
export const FAKE_TOKEN = { tokenId: "homelab@pve!test", tokenSecret: "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0" };

/** Writes text to a temp file (for caFile tests). */
export function tempFile(name: string, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "homelab-proxmox-test-"));
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

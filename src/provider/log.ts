/**
 * What the plugin tells the user while it works: short status lines
 * ("building hello-web:3f2a…", "installing Docker") and, with
 * `HOMELAB_VERBOSE=true`, the full output of image builds and provisioning
 * scripts. Messages go to the Pulumi engine through its `Log` RPC (the
 * engine's address is the plugin's first argument), attached to the
 * resource's URN, so the homelab CLI shows them on the resource's progress
 * line; the Automation API delivers them as diagnostic events. Without an
 * engine (in-process tests, or a failed RPC) they go to stderr, which the
 * engine turns into diagnostics without a resource. Stdout is never used:
 * it carries the plugin protocol.
 */
import { createRequire } from "node:module";

/** How much a message matters. */
export type LogSeverity = "info" | "warning";

/** One message for the user. */
export interface LogEntry {
  urn: string;
  severity: LogSeverity;
  message: string;
  /** A status line that the next one replaces (Pulumi shows it on the resource's line, not in the final diagnostics). */
  ephemeral: boolean;
}

/** Where messages go instead of the engine (tests). */
export type LogSink = (entry: LogEntry) => void;

/** Options of ProviderLog. */
export interface ProviderLogOptions {
  /** The engine's gRPC address (the plugin's first argument); none in-process. */
  engineAddress?: string;
  /** `HOMELAB_VERBOSE=true`: build and script output too. */
  verbose: boolean;
  /** Receives every message instead of the engine and stderr. */
  sink?: LogSink;
  /** Where stderr lines go (default process.stderr). */
  stderr?: (text: string) => void;
}

interface LogRequestLike {
  setSeverity(value: number): LogRequestLike;
  setMessage(value: string): LogRequestLike;
  setUrn(value: string): LogRequestLike;
  setStreamid(value: number): LogRequestLike;
  setEphemeral(value: boolean): LogRequestLike;
}
interface EngineClientLike {
  log(request: LogRequestLike, callback: (error: Error | null) => void): unknown;
  close(): void;
}
interface EngineRpc {
  client: EngineClientLike;
  LogRequest: new () => LogRequestLike;
}

// pulumirpc.LogSeverity
const SEVERITY: Record<LogSeverity, number> = { info: 1, warning: 2 };

/**
 * The engine's address among the plugin's arguments, as the SDK reads it: the first one
 * that is not `--logtostderr`, `-v=N` or `--tracing <endpoint>`.
 */
export function engineAddressFromArgs(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? "";
    if (a === "--logtostderr" || a.startsWith("-v=")) continue;
    if (a === "--tracing") {
      i++;
      continue;
    }
    return a;
  }
  return undefined;
}

/** The resource's name, from its URN (`urn:pulumi:stack::project::type::name`). */
export function urnName(urn: string): string {
  return urn.split("::").pop() ?? urn;
}

/**
 * The engine's `Engine` gRPC client. The SDK has it but only wires it up for
 * programs, so it is loaded the way the SDK loads it (its own copy of grpc-js,
 * resolved from the SDK's folder, so the credentials object matches).
 */
function connectEngine(address: string): EngineRpc {
  const here = createRequire(import.meta.url);
  const grpcPb = here.resolve("@pulumi/pulumi/proto/engine_grpc_pb.js");
  const sdk = createRequire(grpcPb);
  const grpc = sdk("@grpc/grpc-js") as { credentials: { createInsecure(): unknown } };
  const { EngineClient } = sdk(grpcPb) as { EngineClient: new (address: string, credentials: unknown) => EngineClientLike };
  const { LogRequest } = sdk("./engine_pb.js") as { LogRequest: new () => LogRequestLike };
  return { client: new EngineClient(address, grpc.credentials.createInsecure()), LogRequest };
}

/** Status lines and (verbose) output for the user, through the engine when there is one. */
export class ProviderLog {
  readonly verbose: boolean;
  private readonly engineAddress: string | undefined;
  private readonly sink: LogSink | undefined;
  private readonly stderr: (text: string) => void;
  private rpc: EngineRpc | undefined;
  private engineFailed = false;
  // Messages reach the engine in the order they were written.
  private last: Promise<void> = Promise.resolve();

  constructor(o: ProviderLogOptions) {
    this.verbose = o.verbose;
    this.engineAddress = o.engineAddress;
    this.sink = o.sink;
    this.stderr = o.stderr ?? ((text) => void process.stderr.write(text));
  }

  /** A short line saying what is happening now; on stderr only when verbose. */
  status(urn: string, message: string): void {
    this.write({ urn, severity: "info", message, ephemeral: true }, this.verbose);
  }

  /** A line worth keeping (it is not replaced by the next status); on stderr only when verbose. */
  info(urn: string, message: string): void {
    this.write({ urn, severity: "info", message, ephemeral: false }, this.verbose);
  }

  /** Build and script output, one line at a time: only when verbose. */
  output(urn: string, line: string): void {
    if (!this.verbose || line.trim() === "") return;
    this.write({ urn, severity: "info", message: line, ephemeral: false }, true);
  }

  /** Something the user should know even without verbose. */
  warn(urn: string, message: string): void {
    this.write({ urn, severity: "warning", message, ephemeral: false }, true);
  }

  /** A line splitter for streamed output (chunks may end mid-line); call the result with undefined to flush the rest. */
  lines(urn: string): (chunk: string | undefined) => void {
    let partial = "";
    return (chunk) => {
      if (!this.verbose) return;
      if (chunk === undefined) {
        if (partial !== "") this.output(urn, partial);
        partial = "";
        return;
      }
      const parts = (partial + chunk).split("\n");
      partial = parts.pop() ?? "";
      for (const p of parts) this.output(urn, p.replace(/\r$/, ""));
    };
  }

  /** Resolves when every message so far has reached the engine (or stderr). */
  flush(): Promise<void> {
    return this.last;
  }

  /** Closes the engine connection. */
  close(): void {
    this.rpc?.client.close();
    this.rpc = undefined;
  }

  private write(entry: LogEntry, toStderr: boolean): void {
    if (this.sink) {
      this.sink(entry);
      return;
    }
    const rpc = this.engine();
    if (!rpc) {
      if (toStderr) this.toStderr(entry);
      return;
    }
    this.last = this.last.then(
      () =>
        new Promise<void>((resolve) => {
          const request = new rpc.LogRequest().setSeverity(SEVERITY[entry.severity]).setMessage(entry.message).setUrn(entry.urn).setStreamid(0).setEphemeral(entry.ephemeral);
          rpc.client.log(request, (error) => {
            if (error) {
              // The engine went away or refused: stderr still reaches the user (as an unattached diagnostic).
              this.engineFailed = true;
              if (toStderr) this.toStderr(entry);
            }
            resolve();
          });
        }),
    );
  }

  private engine(): EngineRpc | undefined {
    if (this.engineAddress === undefined || this.engineFailed) return undefined;
    if (!this.rpc) {
      try {
        this.rpc = connectEngine(this.engineAddress);
      } catch {
        this.engineFailed = true;
        return undefined;
      }
    }
    return this.rpc;
  }

  private toStderr(entry: LogEntry): void {
    const prefix = `homelab provider: ${urnName(entry.urn)}: ${entry.severity === "warning" ? "warning: " : ""}`;
    this.stderr(entry.message.split("\n").map((l) => `${prefix}${l}\n`).join(""));
  }
}

/**
 * Provisioning a container for `docker.compose: true`, over one SSH session:
 * install Docker (checked first), prove it can start a container, write the
 * deployment's files, enable and start (or reload) its systemd unit, and wait
 * until its containers run and are healthy. The scripts come from
 * compose.ts and docker-install.ts; this module only runs them in order and
 * turns failures into messages that say what to do.
 */
import type { ComposeDeployment } from "./compose.ts";
import { deploymentDir } from "./compose-files.ts";
import { applyScript, inspectScript, parseApplyOutput, parseInspectOutput, parseWaitOutput, readHashScript, removeScript, restartScript, waitScript } from "./compose-scripts.ts";
import type { ApplyReport, InspectReport, WaitReport } from "./compose-scripts.ts";
import type { DockerInstallOptions, FailureContext, InstallReport } from "./docker-install.ts";
import { explainDockerFailure, installDockerScript, parseInstallOutput, parseProbeOutput, probeScript, smokeTestScript } from "./docker-install.ts";
import type { ConnectOptions, RemoteExecutor, RunResult } from "./ssh.ts";
import { KnownHosts, SshError, connectSsh, tail } from "./ssh.ts";

/** The container to provision and how to reach it. */
export interface ProvisionTarget {
  /** The container's IPv4 address (ContainerOutputs.address). */
  address: string;
  port?: number;
  /** The environment's private key text. */
  privateKey: string | Buffer;
  privateKeyFile?: string;
  /** The environment's known_hosts file (see knownHostsFile). */
  knownHostsFile: string;
}

/** Steps, for progress and errors. */
export type ProvisionStep = "connect" | "install-docker" | "smoke-test" | "apply" | "wait" | "restart" | "remove" | "inspect";

/** How to provision. */
export interface ProvisionOptions {
  /** Where Docker comes from (default: Docker's repository, pinned). */
  docker?: DockerInstallOptions;
  /** Run the smoke test every time (default) or only right after installing Docker. */
  smokeTest?: "always" | "after-install";
  /** How long the project may take to run and be healthy (default 300 s). */
  waitTimeoutSec?: number;
  /** Script output as it arrives (for --verbose). Secrets are never in it: scripts print markers and logs only. */
  onOutput?: (chunk: string) => void;
  /** A step starts. */
  onStep?: (step: ProvisionStep, detail: string) => void;
  connect?: ConnectOptions;
  /** Use this executor instead of connecting (tests, or a caller that already holds a session). */
  executor?: RemoteExecutor;
}

/** What provisioning did and how long each step took. */
export interface ProvisionResult {
  docker: InstallReport;
  smoke: "passed" | "skipped";
  apply: ApplyReport;
  wait: WaitReport;
  hash: string;
  ms: { connect: number; install: number; smoke: number; apply: number; wait: number; total: number };
}

/** A provisioning failure: the step, what happened, and what to do. */
export class ProvisionError extends Error {
  readonly step: ProvisionStep;
  readonly hint: string | undefined;
  /** Output that explains it (container logs, apt or journal lines). */
  readonly details: string;
  constructor(step: ProvisionStep, message: string, o: { hint?: string; details?: string; cause?: unknown } = {}) {
    super([message, o.details ? o.details.replace(/^/gm, "  | ") : "", o.hint ? `  → ${o.hint}` : ""].filter(Boolean).join("\n"), o.cause !== undefined ? { cause: o.cause } : undefined);
    this.name = "ProvisionError";
    this.step = step;
    this.hint = o.hint;
    this.details = o.details ?? "";
  }
}

async function open(target: ProvisionTarget, o: ProvisionOptions): Promise<{ ex: RemoteExecutor; owned: boolean }> {
  if (o.executor) return { ex: o.executor, owned: false };
  o.onStep?.("connect", `SSH to root@${target.address}`);
  try {
    const ex = await connectSsh(
      {
        host: target.address,
        ...(target.port !== undefined ? { port: target.port } : {}),
        privateKey: target.privateKey,
        ...(target.privateKeyFile !== undefined ? { privateKeyFile: target.privateKeyFile } : {}),
        knownHosts: new KnownHosts(target.knownHostsFile),
      },
      o.connect,
    );
    return { ex, owned: true };
  } catch (err) {
    if (err instanceof SshError) throw new ProvisionError("connect", err.message.split("\n")[0] ?? err.message, { hint: err.hint, cause: err });
    throw err;
  }
}

async function step(ex: RemoteExecutor, name: ProvisionStep, what: string, script: string, o: ProvisionOptions, timeoutMs: number): Promise<RunResult> {
  o.onStep?.(name, what);
  const r = await ex.run(script, { check: false, what, timeoutMs, ...(o.onOutput ? { onOutput: (c: string) => o.onOutput?.(c) } : {}) });
  return r;
}

function failure(name: ProvisionStep, what: string, r: RunResult, address: string, fallbackHint?: string, ctx: FailureContext = {}): ProvisionError {
  // No exit status: the session died (container stopped or restarted, network gone), whatever the output says.
  if (r.code === -1 && r.signal === undefined) {
    return new ProvisionError(name, `${what} on ${address} was cut off: the SSH session ended without an exit status`, {
      details: tail(r.stderr.trim() || r.stdout, 10),
      hint: "the container stopped or restarted, or the network to it dropped; deploy again (every step is safe to repeat)",
    });
  }
  const out = `${r.stdout}\n${r.stderr}`;
  const hint = explainDockerFailure(out, ctx) ?? fallbackHint;
  return new ProvisionError(name, `${what} failed on ${address} (exit ${r.code})`, { details: tail(r.stderr.trim() || r.stdout, 40), ...(hint ? { hint } : {}) });
}

/**
 * What the advice for a failure needs to know about the container, asked
 * only when the failure is one whose advice depends on it (which release,
 * which Docker packages): one more command on the open session.
 */
async function contextFor(ex: RemoteExecutor, r: RunResult, o: ProvisionOptions, known: FailureContext = {}): Promise<FailureContext> {
  const ctx: FailureContext = { ...(o.docker ? { source: o.docker.source } : {}), ...known };
  if (r.code === -1 || (ctx.codename !== undefined && ctx.source !== undefined) || explainDockerFailure(`${r.stdout}\n${r.stderr}`) === undefined) return ctx;
  try {
    const probe = parseProbeOutput((await ex.run(probeScript(), { check: false, what: "reading the container's release", timeoutMs: 30_000 })).stdout);
    return { ...(probe.source ? { source: probe.source } : {}), ...(probe.codename ? { codename: probe.codename } : {}), ...ctx };
  } catch {
    return ctx;
  }
}

/** Installs Docker and Compose if needed, checks that containers can start, and prints what is there. */
export async function ensureDocker(ex: RemoteExecutor, o: ProvisionOptions = {}): Promise<{ report: InstallReport; smoke: "passed" | "skipped"; installMs: number; smokeMs: number }> {
  const source = o.docker ?? { source: "docker" };
  let t = Date.now();
  const r = await step(ex, "install-docker", `installing Docker (${source.source === "distribution" ? "distribution packages" : "Docker's repository"})`, installDockerScript(source), o, 30 * 60_000);
  if (r.code !== 0) {
    throw failure("install-docker", "installing Docker", r, ex.address, source.source === "docker" ? "Docker's repository must be reachable from the container; offline, use the distribution's packages (docker source: distribution)" : "the container's apt sources (or package cache) must be reachable");
  }
  const report = parseInstallOutput(r.stdout);
  const installMs = Date.now() - t;
  if (report.compose === "none") throw new ProvisionError("install-docker", `Docker is installed on ${ex.address} but neither 'docker compose' nor 'docker-compose' works`);
  if ((o.smokeTest ?? "always") === "after-install" && report.alreadyPresent) return { report, smoke: "skipped", installMs, smokeMs: 0 };
  t = Date.now();
  const s = await step(ex, "smoke-test", "starting a test container", smokeTestScript(), o, 5 * 60_000);
  if (s.code !== 0) {
    const ctx = { source: source.source, ...(report.os.codename ? { codename: report.os.codename } : {}) };
    throw failure("smoke-test", "starting a test container", s, ex.address, "Docker is installed but cannot start containers; see the output above", ctx);
  }
  return { report, smoke: "passed", installMs, smokeMs: Date.now() - t };
}

/** Waits for the project's containers; throws with the failing container's logs. */
async function waitForProject(ex: RemoteExecutor, project: string, o: ProvisionOptions = {}): Promise<WaitReport> {
  const timeoutSec = o.waitTimeoutSec ?? 300;
  const r = await step(ex, "wait", `waiting for ${project} to run${timeoutSec ? ` (up to ${timeoutSec} s)` : ""}`, waitScript({ project, timeoutSec }), o, (timeoutSec + 120) * 1000);
  const report = parseWaitOutput(r.stdout, r.code);
  if (report.ok) return report;
  if (report.failed) {
    throw new ProvisionError("wait", `container ${report.failed.container} of ${project} ${report.failed.reason}`, {
      details: r.stderr.trim(),
      hint: explainDockerFailure(r.stderr, await contextFor(ex, r, o)) ?? `look at the logs above; on the container: /opt/homelab/${project}/compose logs`,
    });
  }
  if (report.timedOut) {
    throw new ProvisionError("wait", `${project} was not running${/\(starting\)|\(unhealthy\)/.test(r.stdout) ? " and healthy" : ""} within ${timeoutSec} s (${tail(r.stdout, 1)})`, {
      details: r.stderr.trim(),
      hint: "raise the wait timeout if the service is just slow to start, else see its logs above",
    });
  }
  throw failure("wait", `waiting for ${project}`, r, ex.address, undefined, await contextFor(ex, r, o));
}

/**
 * Provisions a container with a compose deployment: Docker (if needed), the
 * files, the unit, a start or reload of only that project, then waits until it
 * runs and is healthy. Running it again with nothing changed changes nothing.
 */
export async function provisionCompose(target: ProvisionTarget, deployment: ComposeDeployment, o: ProvisionOptions = {}): Promise<ProvisionResult> {
  const started = Date.now();
  const { ex, owned } = await open(target, o);
  const connectMs = Date.now() - started;
  try {
    const docker = await ensureDocker(ex, o);
    let t = Date.now();
    // The script carries the secrets: it goes on stdin and its text never appears in messages.
    const a = await step(ex, "apply", `writing ${deployment.files.length} files and starting ${deployment.unitName}`, applyScript(deployment), o, 45 * 60_000);
    if (a.code !== 0) {
      const ctx = { ...(docker.report.os.codename ? { codename: docker.report.os.codename } : {}) };
      throw failure("apply", `starting ${deployment.project}`, a, ex.address, `see the unit's log: journalctl -u ${deployment.unitName}`, await contextFor(ex, a, o, ctx));
    }
    const apply = parseApplyOutput(a.stdout);
    const applyMs = Date.now() - t;
    t = Date.now();
    const wait = await waitForProject(ex, deployment.project, o);
    return {
      docker: docker.report,
      smoke: docker.smoke,
      apply,
      wait,
      hash: deployment.hashes.all,
      ms: { connect: connectMs, install: docker.installMs, smoke: docker.smokeMs, apply: applyMs, wait: Date.now() - t, total: Date.now() - started },
    };
  } finally {
    if (owned) await ex.close();
  }
}

/** Restarts a service's compose project (`down` then `up -d` through its unit) and waits for it: the monitor's first remedy. */
export async function restartCompose(target: ProvisionTarget, service: string, o: ProvisionOptions = {}): Promise<WaitReport> {
  const { ex, owned } = await open(target, o);
  try {
    const r = await step(ex, "restart", `restarting ${service}`, restartScript(service), o, 30 * 60_000);
    if (r.code !== 0) throw failure("restart", `restarting ${service}`, r, ex.address, `see journalctl -u homelab-${service}.service`, await contextFor(ex, r, o));
    return await waitForProject(ex, service, o);
  } finally {
    if (owned) await ex.close();
  }
}

/** Stops a service's compose project and removes its unit and files (volumes and images only when asked). */
export async function removeCompose(target: ProvisionTarget, service: string, o: ProvisionOptions & { removeVolumes?: boolean; removeImages?: boolean } = {}): Promise<void> {
  const { ex, owned } = await open(target, o);
  try {
    const r = await step(ex, "remove", `removing ${service}`, removeScript(service, { ...(o.removeVolumes ? { removeVolumes: true } : {}), ...(o.removeImages ? { removeImages: true } : {}) }), o, 10 * 60_000);
    if (r.code !== 0) throw failure("remove", `removing ${service}`, r, ex.address);
  } finally {
    if (owned) await ex.close();
  }
}

/** The hash of what is deployed in the container for a service (undefined when nothing is), for refresh and drift checks. */
export async function readDeployedHash(target: ProvisionTarget, service: string, o: ProvisionOptions = {}): Promise<string | undefined> {
  const { ex, owned } = await open(target, o);
  try {
    const r = await ex.run(readHashScript(service), { what: `reading ${deploymentDir(service)}/.homelab-hash` });
    const h = r.stdout.trim();
    return h === "" ? undefined : h;
  } finally {
    if (owned) await ex.close();
  }
}

/** Reads back what a deployment wrote (modes and digests of its files, the unit's state, the recorded hash): refresh and drift checks. */
export async function inspectDeployment(target: ProvisionTarget, deployment: Pick<ComposeDeployment, "files" | "unitName" | "dir">, o: ProvisionOptions = {}): Promise<InspectReport> {
  const { ex, owned } = await open(target, o);
  try {
    const r = await step(ex, "inspect", `reading back ${deployment.dir}`, inspectScript(deployment), o, 2 * 60_000);
    if (r.code !== 0) throw failure("inspect", `reading back ${deployment.dir}`, r, ex.address);
    return parseInspectOutput(r.stdout);
  } finally {
    if (owned) await ex.close();
  }
}

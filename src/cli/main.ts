#!/usr/bin/env node
import { Command, CommanderError } from "@commander-js/extra-typings";
import { RepositoryError } from "../config/discover.ts";
import { registerBackups } from "./commands/backups.ts";
import { registerBases } from "./commands/bases.ts";
import { registerDeploy } from "./commands/deploy.ts";
import { registerDestroy } from "./commands/destroy.ts";
import { registerList } from "./commands/list.ts";
import { registerMonitor } from "./commands/monitor.ts";
import { registerSandboxCommand } from "./commands/sandbox.ts";
import { registerSchema } from "./commands/schema.ts";
import { registerShow } from "./commands/show.ts";
import { registerState } from "./commands/state.ts";
import { registerStatus } from "./commands/status.ts";
import { registerUnlock } from "./commands/unlock.ts";
import { registerValidate } from "./commands/validate.ts";
import { EXIT, EXIT_HELP } from "./exit-codes.ts";
import { version } from "./version.ts";

/** Builds the `homelab` command tree. */
function buildProgram(): Command<[], { dir?: string; env?: string; verbose?: true; color: boolean }> {
  const program = new Command("homelab")
    .description("Infrastructure as Code for a Proxmox VE homelab: validate, plan and deploy services/*/service.yaml")
    .version(version(), "-V, --version")
    .option("--dir <path>", "the homelab repository (default: nearest folder upward with services/ or Pulumi.yaml)")
    .option("--env <name>", "the environment, i.e. Pulumi.<env>.yaml (default: $HOMELAB_ENV, else prod, else the only one)")
    .option("--verbose", "more detail; plain progress lines")
    .option("--no-color", "no colors (also: NO_COLOR=1)")
    .showSuggestionAfterError(true)
    .showHelpAfterError("(add --help for usage)")
    .addHelpText("after", "\n" + EXIT_HELP)
    .exitOverride();
  registerList(program);
  registerShow(program);
  registerValidate(program);
  registerSchema(program);
  registerSandboxCommand(program);
  registerDeploy(program);
  registerDestroy(program);
  registerStatus(program);
  registerUnlock(program);
  registerBackups(program);
  registerBases(program);
  registerState(program);
  registerMonitor(program);
  for (const c of program.commands) c.exitOverride();
  return program;
}

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version are "errors" to commander; they exit 0.
      process.exitCode = e.exitCode === 0 ? EXIT.ok : EXIT.usage;
      return;
    }
    // The engine's set-up (backend, credentials, passphrase) and a backend that cannot be read say what to do; no stack trace.
    if (e instanceof RepositoryError || (e instanceof Error && (e.name === "EngineSetupError" || e.name === "BackendStoreError"))) {
      const hint: unknown = Reflect.get(e, "hint");
      process.stderr.write(`homelab: ${e.message}${typeof hint === "string" && hint !== "" ? `\n  hint: ${hint}` : ""}\n`);
      process.exitCode = EXIT.failed;
      return;
    }
    throw e;
  }
}

process.on("SIGINT", () => process.exit(EXIT.interrupted));
// Output piped into something that stops reading (`| head`, `| grep -q`) is not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(process.exitCode ?? EXIT.ok);
    throw e;
  });
}
await main(process.argv);

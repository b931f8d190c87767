/**
 * Where homelab keeps its own files inside a repository (`.homelab/`, ignored
 * by git) and what an environment's file is called. Every layer builds these
 * paths from here, so moving one is a one-line change and no two modules can
 * disagree about where something lives.
 */
import { join } from "node:path";

/** The folder of the tool's own files in a repository. */
export function homelabDir(root: string): string {
  return join(root, ".homelab");
}

/** The file name of an environment's settings: `Pulumi.<env>.yaml`. */
export function envFileName(envName: string): string {
  return `Pulumi.${envName}.yaml`;
}

/** Where environment files the tool writes (the sandbox's) are kept. */
export function generatedEnvironmentsDir(root: string): string {
  return join(homelabDir(root), "environments");
}

/** The default file backend's folder (`file://<repo>/.homelab/state`). */
export function defaultStateBackendDir(root: string): string {
  return join(homelabDir(root), "state");
}

/** The persistent Pulumi workspace folders, one per backend. */
export function workspacesDir(root: string): string {
  return join(homelabDir(root), "workspace");
}

/** The passphrase file the tool generates when none is configured. */
export function passphraseFile(root: string): string {
  return join(homelabDir(root), "passphrase");
}

/** The record of which Pulumi CLI set-up found or built. */
export function pulumiRecordFile(root: string): string {
  return join(homelabDir(root), "pulumi");
}

/** An environment's SSH folder: its key pair and pinned host keys. */
export function sshDir(root: string, envName: string): string {
  return join(homelabDir(root), "ssh", envName);
}

/** Where an environment's private key lives. */
export function sshKeyFile(root: string, envName: string): string {
  return join(sshDir(root, envName), "id_ed25519");
}

/** Where an environment's known host keys are kept, next to its key pair. */
export function knownHostsFile(root: string, envName: string): string {
  return join(sshDir(root, envName), "known_hosts");
}

/** Where an environment's monitor keeps its files: `.homelab/monitor/<env>/`. */
export function monitorDir(root: string, envName: string): string {
  return join(homelabDir(root), "monitor", envName);
}

/** Where `deploy --dry-run` records each service's last preview: `.homelab/previews/<env>/`. */
export function previewsDir(root: string, envName: string): string {
  return join(homelabDir(root), "previews", envName);
}

/** The default state folder of a repository's sandbox. */
export function defaultSandboxDir(root: string): string {
  return join(homelabDir(root), "sandbox");
}

/** Where a repository's validate cache lives. */
export function validateCacheFile(root: string): string {
  return join(homelabDir(root), "cache", "validate.json");
}

/** The file an environment was read from, or its conventional name when it has none (for messages). */
export function envFileOf(env: { readonly file?: string | undefined; readonly name: string }): string {
  return env.file ?? envFileName(env.name);
}

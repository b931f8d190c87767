/** Exit codes of every command, documented in `--help` and the README. */
export const EXIT = {
  /** Success; for deploy in CI mode: nothing to change. */
  ok: 0,
  /** A failure, or invalid configuration. */
  failed: 1,
  /** Wrong command-line usage. */
  usage: 2,
  /** A safety guard refused to continue (CI deletion guard, production guard, protect). */
  blocked: 3,
  /** CI mode: changes were applied (or, with --dry-run, are pending). */
  changes: 4,
  /** Interrupted (Ctrl-C). */
  interrupted: 130,
} as const;

/** The exit-code table as help text. */
export const EXIT_HELP = `Exit codes:
  0    success (deploy --ci: no changes)
  1    failed, or the configuration is invalid
  2    usage error (unknown command or option)
  3    blocked by a guard (CI deletion guard, production guard, protect)
  4    deploy --ci: changes applied (with --dry-run: changes pending)
  130  interrupted`;

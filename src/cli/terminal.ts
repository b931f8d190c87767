/**
 * The terminal side of commands that change things: the yes/no question,
 * and Ctrl-C during a deploy or destroy (first a clean stop, then at once).
 */
import { EXIT } from "./exit-codes.ts";

/** Asks a yes/no question on the terminal (on stderr); anything but y/yes is no. */
export async function askYesNo(question: string): Promise<boolean> {
  const { createInterface } = await import("node:readline/promises");
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
  } finally {
    rl.close();
  }
}

/** Asks the user to type `expected` to confirm something that cannot be undone; true only for that exact answer. */
export async function askTyped(question: string, expected: string): Promise<boolean> {
  const { createInterface } = await import("node:readline/promises");
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return (await rl.question(`${question} Type ${expected} to confirm: `)).trim() === expected;
  } finally {
    rl.close();
  }
}

/**
 * Handles Ctrl-C for the duration of a deploy or destroy: the first asks for
 * a clean stop, the second quits at once. Returns the function that restores
 * the previous handlers.
 */
export function takeSigint(onFirst: () => void): () => void {
  const saved = process.listeners("SIGINT");
  process.removeAllListeners("SIGINT");
  let count = 0;
  const handler = (): void => {
    count++;
    if (count === 1) onFirst();
    else process.exit(EXIT.interrupted);
  };
  process.on("SIGINT", handler);
  return () => {
    process.removeListener("SIGINT", handler);
    for (const l of saved) process.on("SIGINT", l);
  };
}

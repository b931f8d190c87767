/**
 * Quoting a word for bash, shared by the lxc backend's scripts and logs and
 * by the API's task logs (vzdump's command line). Pure.
 */

/** Quotes a word for bash: as it is when it holds only safe characters, else in single quotes. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

import picomatch from "picomatch";

/**
 * A compiled glob. picomatch's matcher takes extra arguments (`arr.filter(pm(g))`
 * passes the index as options), so it is wrapped to take exactly one string.
 */
export function globMatcher(pattern: string): (name: string) => boolean {
  const isMatch = picomatch(pattern, { nocase: true, dot: true });
  return (name: string) => isMatch(name);
}

const validity = new Map<string, boolean>();

/** True when the pattern is syntactically usable (picomatch throws on some malformed input). Remembered per pattern: services repeat theirs. */
export function isValidGlob(pattern: string): boolean {
  let valid = validity.get(pattern);
  if (valid === undefined) {
    try {
      picomatch.makeRe(pattern);
      valid = pattern.trim() !== "";
    } catch {
      valid = false;
    }
    validity.set(pattern, valid);
  }
  return valid;
}

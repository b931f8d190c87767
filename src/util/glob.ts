import picomatch from "picomatch";

/**
 * A compiled glob. picomatch's matcher takes extra arguments (`arr.filter(pm(g))`
 * passes the index as options), so it is wrapped to take exactly one string.
 */
export function globMatcher(pattern: string): (name: string) => boolean {
  const isMatch = picomatch(pattern, { nocase: true, dot: true });
  return (name: string) => isMatch(name);
}

/** True when the pattern is syntactically usable (picomatch throws on some malformed input). */
export function isValidGlob(pattern: string): boolean {
  try {
    picomatch.makeRe(pattern);
    return pattern.trim() !== "";
  } catch {
    return false;
  }
}

/**
 * A fast 128-bit content fingerprint (two independently seeded 64-bit
 * multiply-xorshift lanes, cyrb53's mixing, plus the length) for telling
 * whether a file changed. Not cryptographic: it guards a local cache against
 * edits, not against an attacker (who could edit the cache itself). Written in
 * JS because loading node:crypto alone costs more than hashing a few hundred
 * small files this way.
 */
export function fingerprint(data: Uint8Array | string): string {
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  return `${bytes.length.toString(36)}-${lanes(bytes, 0)}${lanes(bytes, 0x9e3779b9)}`;
}

function lanes(bytes: Uint8Array, seed: number): string {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] ?? 0;
    h1 = Math.imul(h1 ^ b, 2654435761);
    h2 = Math.imul(h2 ^ b, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (h1 >>> 0).toString(16).padStart(8, "0") + (h2 >>> 0).toString(16).padStart(8, "0");
}

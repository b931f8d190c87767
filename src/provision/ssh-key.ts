/**
 * The SSH key pair of an environment, used by provisioning to reach inside
 * containers: `.homelab/ssh/<env>/id_ed25519` (0600) and its `.pub`,
 * generated on first deploy with node's crypto (no ssh-keygen needed).
 */
import { generateKeyPairSync } from "node:crypto";
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { sshKeyFile } from "../config/homelab-dir.ts";

/** An environment's key pair on disk. */
export interface SshKey {
  privateKeyFile: string;
  publicKeyFile: string;
  /** The OpenSSH public key line. */
  publicKey: string;
  generated: boolean;
}

function sshString(b: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

/** OpenSSH public and private key text for an ed25519 key pair from its raw 32-byte parts. Pure. */
function openSshEd25519(pub: Buffer, seed: Buffer, comment: string, check: number): { publicKey: string; privateKey: string } {
  const type = Buffer.from("ssh-ed25519");
  const pubBlob = Buffer.concat([sshString(type), sshString(pub)]);
  const publicKey = `ssh-ed25519 ${pubBlob.toString("base64")} ${comment}`;
  const checkBytes = Buffer.alloc(4);
  checkBytes.writeUInt32BE(check >>> 0);
  let priv = Buffer.concat([checkBytes, checkBytes, sshString(type), sshString(pub), sshString(Buffer.concat([seed, pub])), sshString(Buffer.from(comment))]);
  // Padded to the cipher block size (8 for "none") with 1, 2, 3, ...
  const pad = (8 - (priv.length % 8)) % 8;
  priv = Buffer.concat([priv, Buffer.from(Array.from({ length: pad }, (_, i) => i + 1))]);
  const none = Buffer.from("none");
  const body = Buffer.concat([
    Buffer.from("openssh-key-v1\0"),
    sshString(none),
    sshString(none),
    sshString(Buffer.alloc(0)),
    Buffer.from([0, 0, 0, 1]),
    sshString(pubBlob),
    sshString(priv),
  ]);
  const b64 = body.toString("base64").replace(/(.{70})/g, "$1\n").replace(/\n$/, "");
  return { publicKey, privateKey: `-----BEGIN OPENSSH PRIVATE KEY-----\n${b64}\n-----END OPENSSH PRIVATE KEY-----\n` };
}

/** Returns the environment's key pair, generating it (0600) when missing. */
export function ensureSshKey(root: string, envName: string): SshKey {
  const privateKeyFile = sshKeyFile(root, envName);
  const publicKeyFile = `${privateKeyFile}.pub`;
  try {
    const publicKey = readFileSync(publicKeyFile, "utf8").trim();
    statSync(privateKeyFile);
    if ((statSync(privateKeyFile).mode & 0o077) !== 0) chmodSync(privateKeyFile, 0o600);
    return { privateKeyFile, publicKeyFile, publicKey, generated: false };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  const dir = path.dirname(privateKeyFile);
  mkdirSync(path.dirname(dir), { recursive: true, mode: 0o700 });
  const { publicKey: pubKey, privateKey: privKey } = generateKeyPairSync("ed25519");
  const pub = Buffer.from(pubKey.export({ format: "jwk" }).x ?? "", "base64url");
  const seed = Buffer.from(privKey.export({ format: "jwk" }).d ?? "", "base64url");
  const text = openSshEd25519(pub, seed, `homelab-${envName}`, pub.readUInt32BE(0));
  // Built in a side folder and renamed into place: two first runs at once
  // must end up with one key pair, and nobody may read half a key.
  const tmp = `${dir}.${process.pid}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { mode: 0o700 });
  writeFileSync(path.join(tmp, "id_ed25519"), text.privateKey, { mode: 0o600 });
  writeFileSync(path.join(tmp, "id_ed25519.pub"), text.publicKey + "\n", { mode: 0o644 });
  try {
    renameSync(tmp, dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== "ENOTEMPTY" && code !== "EEXIST") {
      rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
    if (existsSync(publicKeyFile)) {
      // Another first run won the race: use its pair.
      rmSync(tmp, { recursive: true, force: true });
      return { privateKeyFile, publicKeyFile, publicKey: readFileSync(publicKeyFile, "utf8").trim(), generated: false };
    }
    // The folder exists without a key (e.g. only known_hosts): move the pair
    // in file by file, under a lock so two runs cannot mix their halves.
    return installIntoExistingDir(tmp, dir, privateKeyFile, publicKeyFile, text.publicKey);
  }
  return { privateKeyFile, publicKeyFile, publicKey: text.publicKey, generated: true };
}

function installIntoExistingDir(tmp: string, dir: string, privateKeyFile: string, publicKeyFile: string, publicKey: string): SshKey {
  const lock = path.join(dir, ".keygen.lock");
  let fd: number;
  try {
    fd = openSync(lock, "wx", 0o600);
  } catch {
    rmSync(tmp, { recursive: true, force: true });
    // Someone else is installing a pair: wait for its public half (the private one lands first).
    const deadline = Date.now() + 10_000;
    while (!existsSync(publicKeyFile)) {
      if (Date.now() > deadline) throw new Error(`${lock} is held and no key appeared; remove it if no homelab run is generating the key`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    }
    return { privateKeyFile, publicKeyFile, publicKey: readFileSync(publicKeyFile, "utf8").trim(), generated: false };
  }
  try {
    renameSync(path.join(tmp, "id_ed25519"), privateKeyFile);
    renameSync(path.join(tmp, "id_ed25519.pub"), publicKeyFile);
  } finally {
    closeSync(fd);
    rmSync(lock, { force: true });
    rmSync(tmp, { recursive: true, force: true });
  }
  return { privateKeyFile, publicKeyFile, publicKey, generated: true };
}

/**
 * A throwaway certificate authority and a server certificate signed by it, for the SMTP sinks that
 * speak STARTTLS and implicit TLS in tests and local development.
 *
 * Synchronous on purpose: vitest.config.ts calls it at the top level and puts the CA path into
 * NODE_EXTRA_CA_CERTS before any project starts, because workerd trusts extra CAs only through that
 * variable, read when the process is spawned. The server certificate names IP:127.0.0.1, IP:::1 and
 * DNS:localhost: workerd rejects a certificate without the IP SAN of the address it dialled.
 *
 * Files already in `dir` are reused while they still verify against the CA and do not expire
 * within a day, so repeated runs (and several vitest processes) share one CA.
 */
import { execFileSync } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";

export interface TestCertificates {
  caPath: string;
  certPath: string;
  keyPath: string;
  ca: string;
  cert: string;
  key: string;
}

const OPENSSL = existsSync("/usr/bin/openssl") ? "/usr/bin/openssl" : "openssl";
const DAY_SECONDS = 86_400;
const REQUIRED_SANS = ["IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1", "DNS:localhost"];

function openssl(args: string[], cwd: string): string {
  try {
    return execFileSync(OPENSSL, args, {
      cwd,
      stdio: ["ignore", "pipe", "pipe"],
      encoding: "utf8",
    });
  } catch (error) {
    const e = error as { stderr?: string; message: string; code?: string };
    if (e.code === "ENOENT") {
      throw new Error(
        "openssl is not installed; it makes the test certificates (apt-get install openssl)",
      );
    }
    throw new Error(`openssl ${args[0]} failed: ${e.stderr?.trim() || e.message}`);
  }
}

/** True when the files exist, chain to the CA, carry the SANs and outlive the next day. */
function usable(dir: string, caPath: string, certPath: string, keyPath: string): boolean {
  if (![caPath, certPath, keyPath].every((p) => existsSync(p))) return false;
  try {
    openssl(["x509", "-in", caPath, "-noout", "-checkend", String(DAY_SECONDS)], dir);
    openssl(["x509", "-in", certPath, "-noout", "-checkend", String(DAY_SECONDS)], dir);
    openssl(["verify", "-CAfile", caPath, certPath], dir);
    const sans = openssl(["x509", "-in", certPath, "-noout", "-ext", "subjectAltName"], dir);
    // openssl prints ::1 either compressed or in full depending on its version.
    const normalized = sans.replace("IP Address:::1", "IP Address:0:0:0:0:0:0:0:1");
    return REQUIRED_SANS.every((san) => normalized.includes(san));
  } catch {
    return false;
  }
}

function generate(dir: string, caPath: string, certPath: string, keyPath: string): void {
  // Build in a private folder and rename into place, so a reader never sees half-written files.
  const work = mkdtempSync(join(dir, ".tmp-"));
  try {
    openssl(
      [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "3650",
        "-subj",
        "/CN=edge-smtp-relay throwaway test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
      ],
      work,
    );
    openssl(
      [
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
      ],
      work,
    );
    writeFileSync(
      join(work, "server.ext"),
      [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        "extendedKeyUsage=serverAuth",
        "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost",
        "",
      ].join("\n"),
    );
    openssl(
      [
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "825",
        "-sha256",
        "-extfile",
        "server.ext",
      ],
      work,
    );
    renameSync(join(work, "ca.key"), join(dir, "ca.key"));
    renameSync(join(work, "server.key"), keyPath);
    renameSync(join(work, "server.pem"), certPath);
    // The CA goes last: a concurrent reader that sees the new CA also sees the new certificate.
    renameSync(join(work, "ca.pem"), caPath);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Serialises creation across processes with an exclusive lock file. A lock older than a minute is
 * taken to be left over from a crashed run.
 */
function withLock<T>(lockPath: string, fn: () => T): T {
  const deadline = Date.now() + 60_000;
  while (!tryLock(lockPath, deadline)) {
    // held by another process: wait and try again
  }
  try {
    return fn();
  } finally {
    try {
      unlinkSync(lockPath);
    } catch {
      // already removed as stale by another process; nothing to release
    }
  }
}

/**
 * One attempt at the lock: true when taken. A stale lock is removed (the next attempt takes it);
 * a live one is waited on for 50 ms, until the deadline.
 */
function tryLock(lockPath: string, deadline: number): boolean {
  try {
    closeSync(openSync(lockPath, "wx"));
    return true;
  } catch (error) {
    if ((error as { code?: string }).code !== "EEXIST") throw error;
  }
  let stale = false;
  try {
    stale = Date.now() - statSync(lockPath).mtimeMs > 60_000;
  } catch {
    return false; // released between our attempts
  }
  if (stale) rmSync(lockPath, { force: true });
  else if (Date.now() > deadline) throw new Error(`timed out waiting for ${lockPath}`);
  else sleepSync(50);
  return false;
}

export function makeTestCertificates(dir: string): TestCertificates {
  mkdirSync(dir, { recursive: true });
  const caPath = join(dir, "ca.pem");
  const certPath = join(dir, "server.pem");
  const keyPath = join(dir, "server.key");
  if (!usable(dir, caPath, certPath, keyPath)) {
    withLock(join(dir, ".lock"), () => {
      // Another process may have made them while we waited for the lock.
      if (!usable(dir, caPath, certPath, keyPath)) generate(dir, caPath, certPath, keyPath);
    });
  }
  return {
    caPath,
    certPath,
    keyPath,
    ca: readFileSync(caPath, "utf8"),
    cert: readFileSync(certPath, "utf8"),
    key: readFileSync(keyPath, "utf8"),
  };
}

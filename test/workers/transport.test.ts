/** The SMTP transport contract for each client, running inside workerd against real SMTP servers
 * over plain TCP, STARTTLS and implicit TLS (trusting the test CA through NODE_EXTRA_CA_CERTS, as
 * the vitest config sets): nodemailer under nodejs_compat, worker-mailer on cloudflare:sockets. */
import { createNodemailerTransport } from "../../src/smtp/nodemailer.ts";
import { createWorkerMailerTransport } from "../../src/smtp/worker-mailer.ts";
import { describeTransportContract } from "../contract/transport.ts";

const EHLO_NAME = "relay.test";

describeTransportContract({
  name: "nodemailer",
  ehloName: EHLO_NAME,
  make: (target, options) =>
    createNodemailerTransport({
      target,
      ehloName: EHLO_NAME,
      timeoutMs: options?.timeoutMs ?? 10_000,
      maxConnections: 1,
      authMethod: options?.authMethod,
    }),
});

describeTransportContract({
  name: "worker-mailer",
  ehloName: EHLO_NAME,
  make: (target, options) =>
    createWorkerMailerTransport({
      target,
      ehloName: EHLO_NAME,
      timeoutMs: options?.timeoutMs ?? 10_000,
      maxConnections: 1,
      ...(options?.authMethod
        ? { authMethods: [options.authMethod === "PLAIN" ? "plain" : "login"] }
        : {}),
    }),
  skip: [
    {
      reason: "worker-mailer 1.2.1 always sends EHLO 127.0.0.1 (its ehlo() has the name built in)",
      tests: ["sends the EHLO name it was configured with"],
    },
    {
      reason:
        "worker-mailer 1.2.1 spins at 100% CPU forever when the server closes the connection during session setup (its read() loops on {done: true}); no timer can interrupt it, so this would hang the suite",
      tests: ["reports a connection dropped before the greeting as temporary"],
    },
    {
      reason:
        "worker-mailer 1.2.1 times out the greeting but leaves its read pending (workerd cannot cancel it: releaseLock() throws while a read is outstanding), and that read spins at 100% CPU once the silent server closes the connection; this would hang the suite",
      tests: ["gives up on a server that stalls before its greeting, as temporary"],
    },
  ],
});

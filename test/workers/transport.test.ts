/** The SMTP transport contract for nodemailer, running inside workerd under nodejs_compat, against
 * real SMTP servers over plain TCP, STARTTLS and implicit TLS (trusting the test CA through
 * NODE_EXTRA_CA_CERTS, as the vitest config sets). */
import { createNodemailerTransport } from "../../src/smtp/nodemailer.ts";
import { describeTransportContract } from "../contract/transport.ts";

describeTransportContract({
  name: "nodemailer",
  make: (target) =>
    createNodemailerTransport({
      target,
      ehloName: "relay.test",
      timeoutMs: 10_000,
      maxConnections: 1,
    }),
});

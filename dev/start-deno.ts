/**
 * `deno task start`: the relay on Deno with nothing else to set up, as `npm start` is on workerd.
 *
 * - Without SMTP_URL, starts the development inbox (dev/smtp-sink/, the same one `npm start`
 *   uses, run here through Deno's Node compatibility) in this process and points the relay at it,
 *   so a Deno user needs no second runtime and one Ctrl-C stops everything.
 * - Without UPSTASH_REDIS_REST_URL/_TOKEN, the relay uses its in-memory queue.
 * - Without ADMIN_TOKEN, makes one up for this run.
 * - Opens the SMTP submission listener on 127.0.0.1:2587 (`--smtp-port`, SMTP_SUBMISSION_PORT),
 *   calling the relay in this process.
 * - Retries need nothing here: Deno.cron fires every minute by itself (wrangler dev never does).
 *
 * Settings come from the environment or `.dev.vars` (dotenv syntax; the environment wins), as with
 * `npm start`. It is read here rather than with `--env-file`, which warns when the file is absent.
 * Ports as with `npm start` (dev/start-options.ts): `deno task start --port 8788`, `PORT=0`.
 */
import { startSinkHttp, startSmtpSink } from "./smtp-sink/index.ts";
import { portInUse, START_USAGE, StartUsageError, startPorts } from "./start-options.ts";

try {
  for (const line of (await Deno.readTextFile(".dev.vars")).split(/\r?\n/)) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (m?.[1] && !Deno.env.get(m[1]))
      Deno.env.set(m[1], (m[2] ?? "").replace(/^(["'])(.*)\1$/, "$2"));
  }
} catch (err) {
  if (!(err instanceof Deno.errors.NotFound)) throw err;
}

function usageExit(err: unknown): never {
  if (!(err instanceof StartUsageError)) throw err;
  console.error(err.message);
  Deno.exit(2);
}

let parsed: ReturnType<typeof startPorts>;
try {
  parsed = startPorts(Deno.args, (name) => Deno.env.get(name));
} catch (err) {
  usageExit(err);
}
if (parsed.help) {
  console.log(
    `deno task start [options]: the relay on Deno with a development inbox\n${START_USAGE}`,
  );
  Deno.exit(0);
}
const { ports } = parsed;

let inboxUrl: string | undefined;
if (!Deno.env.get("SMTP_URL")) {
  const sink = await startSmtpSink({
    port: ports.inboxSmtp,
    tls: "none",
    name: "dev-inbox.localhost",
    log: (line) => console.log(`[inbox] ${line}`),
  }).catch((err) =>
    usageExit(portInUse(err, "The inbox's SMTP server", "--inbox-smtp-port", ports.inboxSmtp)),
  );
  const web = await startSinkHttp(sink, {
    port: ports.inboxHttp,
    title: "edge-smtp-relay development inbox",
  }).catch((err) =>
    usageExit(portInUse(err, "The inbox's web page", "--inbox-port", ports.inboxHttp)),
  );
  Deno.env.set("SMTP_URL", `smtp+insecure://127.0.0.1:${sink.port}`);
  inboxUrl = web.url;
}

// The entry reads PORT itself. For 0 a free port is picked here, so the banner can name it.
if (ports.relay !== undefined) {
  let port = ports.relay;
  if (port === 0) {
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    port = (probe.addr as Deno.NetAddr).port;
    probe.close();
  }
  Deno.env.set("PORT", String(port));
}

// The listener's port, picked here for 0 as the relay's is, so the banner can name it.
{
  let port = ports.submission;
  if (port === 0) {
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    port = (probe.addr as Deno.NetAddr).port;
    probe.close();
  }
  Deno.env.set("SMTP_SUBMISSION_PORT", String(port));
}

if (!Deno.env.get("ADMIN_TOKEN")) {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  Deno.env.set(
    "ADMIN_TOKEN",
    `dev_${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`,
  );
}

// The entry reads the environment when it loads, so it is imported only now.
const entry = await import("../src/runtime/deno.ts");

const host = Deno.env.get("HOST") || "127.0.0.1";
const relayUrl = `http://${host === "0.0.0.0" ? "127.0.0.1" : host}:${Deno.env.get("PORT") || 8787}`;
const health = (await (await fetch(`${relayUrl}/health`)).json()) as { store: string };
const token = Deno.env.get("ADMIN_TOKEN");
const example = JSON.stringify({
  from: "Dev <dev@example.com>",
  to: ["you@example.com"],
  subject: "Hello from edge-smtp-relay on Deno",
  text: "It works!",
});

console.log(`
  edge-smtp-relay is running on Deno ${Deno.version.deno}

    Relay      ${relayUrl}   (API docs: ${relayUrl}/openapi.json)
    Queue      ${health.store === "memory" ? "in memory (set UPSTASH_REDIS_REST_URL/_TOKEN for Upstash)" : "Upstash Redis"}
    Smart host ${inboxUrl ? `development inbox, read it at ${inboxUrl}` : "from SMTP_URL"}
    API key    ${token}
    SMTP       host 127.0.0.1  port ${entry.submissionPort}  user resend  password: the API key
               (no TLS on this local port; set SMTP_SUBMISSION_TLS_CERT/_KEY for STARTTLS)

  Send a message:

    curl -X POST ${relayUrl}/emails \\
      -H 'Authorization: Bearer ${token}' \\
      -H 'Content-Type: application/json' \\
      -d '${example}'

  Or by SMTP (any app's SMTP settings, or swaks):

    swaks --server 127.0.0.1:${entry.submissionPort} --auth-user resend --auth-password '${token}' \\
      --from dev@example.com --to you@example.com
`);

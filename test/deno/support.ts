/**
 * What the Deno suite needs from outside: the services test/node/deno.test.ts started (real Redis
 * behind the Upstash gateway, recording SMTP sinks), handed over in DENO_TEST_SERVICES, and a way
 * to run the relay the way `deno task serve` does, as a child process.
 */
import type { ReceivedMessage } from "../../dev/smtp-sink/index.ts";
import type { Services, SinkName } from "../support/services.ts";

export type { ReceivedMessage, Services, SinkName };

export function services(): Services {
  const raw = Deno.env.get("DENO_TEST_SERVICES");
  if (!raw) {
    throw new Error(
      "DENO_TEST_SERVICES is not set: run this suite through `npm test` or `deno task test` " +
        "(test/node/deno.test.ts starts the gateway and SMTP sinks, then runs it)",
    );
  }
  return JSON.parse(raw) as Services;
}

async function call(url: string, init?: RequestInit): Promise<unknown> {
  const res = await fetch(url, init);
  const text = await res.text();
  if (!res.ok) throw new Error(`${init?.method ?? "GET"} ${url} answered ${res.status}: ${text}`);
  return text ? JSON.parse(text) : undefined;
}

/** The control API of one SMTP sink (see startSinkHttp in dev/smtp-sink/http.ts). */
export function sink(name: SinkName) {
  const base = services().sinks[name].api;
  return {
    waitFor: (count: number, to: string, timeoutMs = 15_000) =>
      call(
        `${base}/api/messages?${new URLSearchParams({ to, wait: String(count), timeout: String(timeoutMs) })}`,
      ) as Promise<ReceivedMessage[]>,
    messages: (to: string) =>
      call(`${base}/api/messages?${new URLSearchParams({ to })}`) as Promise<ReceivedMessage[]>,
    down: () => call(`${base}/api/down`, { method: "POST" }),
    up: () => call(`${base}/api/up`, { method: "POST" }),
  };
}

/** Upstash commands the gateway ran with an argument containing `text` (a key prefix). */
export async function gatewayCommands(text: string): Promise<number> {
  const base = services().upstash.api;
  const answer = (await call(`${base}/api/commands?contains=${encodeURIComponent(text)}`)) as {
    matching: number;
  };
  return answer.matching;
}

/**
 * The flags of a deno.json task that runs `entry` (`deno task serve`, `deno task start`), so this
 * suite fails if the task lacks a permission the program needs.
 */
export async function taskFlags(task: "serve" | "start", entry: string): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(new URL("../../deno.json", import.meta.url)));
  const command: string = config.tasks[task];
  const words = command.split(/\s+/);
  const start = words.indexOf("run");
  const end = words.indexOf(entry);
  if (start < 0 || end < start) throw new Error(`unexpected ${task} task: ${command}`);
  return words.slice(start + 1, end);
}

/** What any process needs to run at all (Deno finds its cache through HOME or DENO_DIR). */
export function passThrough(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of ["PATH", "HOME", "DENO_DIR", "TMPDIR"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) out[name] = value;
  }
  return out;
}

export interface RunningRelay {
  url: string;
  /** Every line the relay wrote, stdout and stderr. */
  lines: string[];
  /** Its JSON log lines, parsed. */
  events(): Record<string, unknown>[];
  /** Waits for the process to end by itself; resolves with its exit code. */
  exited: Promise<number>;
  stop(): Promise<void>;
}

/**
 * Starts src/runtime/deno.ts in its own process with `env` as its whole environment (plus PATH and
 * the like),
 * on a free port, trusting the test CA unless `trustTestCa` is false. Resolves once it listens.
 */
export async function startRelay(
  env: Record<string, string>,
  options: { trustTestCa?: boolean; waitForListening?: boolean } = {},
): Promise<RunningRelay> {
  const root = new URL("../../", import.meta.url);
  const args = ["run", ...(await taskFlags("serve", "src/runtime/deno.ts"))];
  if (options.trustTestCa !== false) args.push("--cert", services().caPath);
  args.push("src/runtime/deno.ts");
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd: root,
    clearEnv: true,
    env: { ...passThrough(), NO_COLOR: "1", PORT: "0", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();

  const lines: string[] = [];
  let onListening: (url: string) => void = () => {};
  const listening = new Promise<string>((resolve) => {
    onListening = resolve;
  });
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    let rest = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      const parts = (rest + text).split("\n");
      rest = parts.pop() ?? "";
      for (const line of parts) {
        lines.push(line);
        if (Deno.env.get("DENO_TEST_RELAY_LOG") === "1") console.error(`[relay] ${line}`);
        const m = /"event":"http\.listening","url":"([^"]+)"/.exec(line);
        if (m?.[1]) onListening(m[1]);
      }
    }
    if (rest) lines.push(rest);
  };
  const pumped = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const exited = child.status.then(async (s) => {
    await pumped;
    return s.code;
  });

  const relay: RunningRelay = {
    url: "",
    lines,
    events: () =>
      lines.flatMap((line) => {
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return [];
        }
      }),
    exited,
    stop: async () => {
      try {
        child.kill("SIGTERM");
      } catch {
        // already gone
      }
      await exited;
    },
  };
  if (options.waitForListening === false) return relay;

  const timeout = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error(`the relay did not start:\n${lines.join("\n")}`)), 30_000),
  );
  const ended = exited.then((code) => {
    throw new Error(`the relay exited (${code}) before listening:\n${lines.join("\n")}`);
  });
  relay.url = await Promise.race([listening, timeout, ended]);
  return relay;
}

export const ADMIN = `deno-admin-${crypto.randomUUID()}`;

/** An environment for one relay: real Redis through the gateway, its own key prefix. */
export function relayEnv(smtpUrl: string, overrides: Record<string, string> = {}) {
  const { upstash } = services();
  return {
    ADMIN_TOKEN: ADMIN,
    SMTP_URL: smtpUrl,
    UPSTASH_REDIS_REST_URL: upstash.url,
    UPSTASH_REDIS_REST_TOKEN: upstash.token,
    REDIS_KEY_PREFIX: `deno:${crypto.randomUUID()}:`,
    RETRY_FIRST_SECONDS: "1",
    SMTP_EHLO_NAME: "relay.deno.test",
    RATE_LIMIT: "1000/1s",
    ...overrides,
  };
}

export async function api(
  relay: RunningRelay,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
  // biome-ignore lint/suspicious/noExplicitAny: the tests read arbitrary JSON answers
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${relay.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${ADMIN}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed };
}

/** Polls `GET /emails/:id` until `done` holds for it, or fails after `timeoutMs`. */
export async function waitForEmail(
  relay: RunningRelay,
  id: string,
  // biome-ignore lint/suspicious/noExplicitAny: the email object as the API answers it
  done: (email: any) => boolean,
  timeoutMs = 15_000,
  // biome-ignore lint/suspicious/noExplicitAny: as above
): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { status, body } = await api(relay, "GET", `/emails/${id}`);
    if (status === 200 && done(body)) return body;
    if (Date.now() > deadline) {
      throw new Error(`email ${id} did not get there in ${timeoutMs} ms: ${JSON.stringify(body)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * `npm run faults [-- --messages N] [--seed S] [--deadline SECONDS] [--json FILE]
 * [--overruns stalls,tarpit | --no-lease-overrun] [--strict] [--verbose]`: one fault run
 * (faults/scenario.ts) with its own Redis gateway and SMTP server, then the ledger. Exits 1 when a
 * recipient was lost, 2 when the arguments are wrong; the other "must be 0" lines (duplicates the
 * at-least-once rule does not allow, refused messages delivered anyway, ...) are reported, and
 * fail the exit status (3) only with --strict.
 */
import { writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { formatLedger, messageIdOf } from "./ledger.ts";
import { type OverrunKind, runFaultScenario, TIMINGS } from "./scenario.ts";

export interface FaultArgs {
  messages: number;
  seed: number;
  deadlineSeconds: number;
  json: string | undefined;
  /** Lease-overrun phases to run. */
  overruns: OverrunKind[];
  strict: boolean;
  /** Print every SMTP session event of the server. */
  verbose: boolean;
}

export function parseFaultArgs(argv: string[]): FaultArgs {
  const args: FaultArgs = {
    messages: 300,
    seed: 1,
    deadlineSeconds: 300,
    json: undefined,
    overruns: ["stalls", "tarpit"],
    strict: false,
    verbose: false,
  };
  const number = (name: string, value: string | undefined, min: number, max: number) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new Error(`${name} takes a whole number from ${min} to ${max}, got ${value}`);
    }
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const [flag, inline] = arg.includes("=") ? arg.split("=", 2) : [arg, undefined];
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case "--messages":
        args.messages = number(flag, value(), 40, 5000);
        break;
      case "--seed":
        args.seed = number(flag, value(), 0, 2 ** 32 - 1);
        break;
      case "--deadline":
        args.deadlineSeconds = number(flag, value(), 30, 3600);
        break;
      case "--json":
        args.json = value();
        if (!args.json) throw new Error("--json takes a file name");
        break;
      case "--overruns":
        args.overruns = overrunList(value());
        break;
      case "--no-lease-overrun":
        args.overruns = [];
        break;
      case "--strict":
        args.strict = true;
        break;
      case "--verbose":
        args.verbose = true;
        break;
      default:
        throw new Error(`unknown argument ${arg}`);
    }
  }
  return args;
}

function overrunList(value: string | undefined): OverrunKind[] {
  const list = (value ?? "").split(",").filter(Boolean);
  for (const kind of list) {
    if (kind !== "stalls" && kind !== "tarpit") {
      throw new Error(`--overruns takes stalls, tarpit or both (comma-separated), got ${kind}`);
    }
  }
  return list as OverrunKind[];
}

async function main(): Promise<number> {
  let args: FaultArgs;
  try {
    args = parseFaultArgs(process.argv.slice(2));
  } catch (error) {
    console.error(
      `${(error as Error).message}\nusage: npm run faults -- [--messages N] [--seed S] [--deadline SECONDS] [--json FILE] [--overruns stalls,tarpit | --no-lease-overrun] [--strict] [--verbose]`,
    );
    return 2;
  }
  console.error(
    `fault run: ${args.messages} messages, seed ${args.seed}, deadline ${args.deadlineSeconds} s; relay timings ${JSON.stringify(TIMINGS)}`,
  );
  const result = await runFaultScenario({
    messages: args.messages,
    seed: args.seed,
    deadlineMs: args.deadlineSeconds * 1000,
    overruns: args.overruns,
    redisUrl: process.env.REDIS_URL,
    progress: (line) => console.error(line),
    ...(args.verbose ? { smtpLog: (line: string) => console.error(`[smtp] ${line}`) } : {}),
  });
  console.log(formatLedger(result.ledger, ["FAULTS", ...result.notes.map((n) => `  ${n}`)]));
  if (args.json) {
    const { observations, ...rest } = result;
    writeFileSync(
      args.json,
      JSON.stringify(
        {
          args,
          ...rest,
          generations: observations.generations,
          sends: observations.sends,
          views: Object.fromEntries(observations.views),
          logs: observations.logs,
          // What the SMTP server received, without the bodies.
          server: observations.server.map(({ raw, ...copy }) => ({
            messageId: messageIdOf(raw),
            ...copy,
          })),
          storeOutages: observations.storeOutages,
          phases: observations.phases,
        },
        null,
        2,
      ),
    );
  }
  if (result.ledger.lost.recipients > 0) return 1;
  const l = result.ledger;
  const violations =
    l.duplicates.notAllowed +
    l.refused.deliveredAnyway +
    l.refused.acceptedDuringOutage +
    l.failedButDelivered +
    l.strays;
  if (args.strict && violations > 0) return 3;
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}

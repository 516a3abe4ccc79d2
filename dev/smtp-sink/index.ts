/**
 * A recording SMTP server that plays the relay's smart host in tests and in local development,
 * with a fault plan for fault-injection runs and an HTTP control API and inbox page next to it.
 *
 * - server.ts: the SMTP server (`startSmtpSink`): TLS, AUTH, SIZE; records every accepted message
 *   with its exact envelope and bytes; refuses recipients or DATA on request; `down()`/`up()`.
 * - faults.ts: the fault plan (`parseFaultPlan`): rules that answer 4xx/5xx, drop the connection
 *   (mid-DATA included) or stall, at the greeting, MAIL, RCPT or DATA, for every k-th or a seeded
 *   share of connections or transactions (never Math.random, so a run repeats); latency and tarpit.
 * - replies.ts: reply codes and realistic texts with enhanced status codes.
 * - http.ts (`startSinkHttp`), api.ts (the JSON control API for tests that only have fetch) and
 *   page.ts (the human "development inbox").
 * - types.ts: the options, the recorded message and the `SmtpSink` handle.
 */
export type {
  FaultAction,
  FaultPlan,
  FaultRule,
  FaultStage,
  FaultStats,
  StallRecord,
} from "./faults.ts";
export { parseFaultPlan } from "./faults.ts";
export { type SinkHttp, startSinkHttp } from "./http.ts";
export { startSmtpSink } from "./server.ts";
export type {
  MessageFilter,
  ReceivedMessage,
  SinkTls,
  SmtpSink,
  SmtpSinkOptions,
} from "./types.ts";
export { filterMessages } from "./types.ts";

/**
 * The SMTP sink's public shapes: its options, what it records per message, and the handle tests
 * drive it with (server.ts builds it, http.ts exposes it over HTTP).
 */
import type { FaultPlan, FaultStats } from "./faults.ts";

export type SinkTls = "none" | "starttls" | "implicit";

export interface SmtpSinkOptions {
  /** 0 (the default) picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default "none". "starttls" and "implicit" need key and cert. */
  tls?: SinkTls;
  key?: string;
  cert?: string;
  /** When set, AUTH PLAIN or LOGIN with these credentials is required before MAIL. */
  auth?: { user: string; pass: string };
  /** Refuse MAIL until the connection is encrypted (530). */
  requireTls?: boolean;
  /** The host name in the greeting and EHLO reply. */
  name?: string;
  /** The SIZE limit advertised and enforced, in bytes (default 50 MiB). */
  size?: number;
  /** Advertise PIPELINING (RFC 2920); default true. False: a server clients must wait on. */
  pipelining?: boolean;
  /** Receives one line per connection, authentication, message and refusal. */
  log?: (line: string) => void;
}

export interface ReceivedMessage {
  /** 1, 2, 3, ... per sink. */
  id: number;
  /** The MAIL FROM address, "" for the null sender. */
  mailFrom: string;
  /** The accepted RCPT TO addresses, in order. */
  rcptTo: string[];
  /** The message as received (after dot-unstuffing), CRLF line ends, decoded as UTF-8. */
  raw: string;
  /** Its length in bytes. */
  size: number;
  receivedAt: string;
  /** True when the message arrived over TLS. */
  secure: boolean;
  authUser?: string;
  /** "PLAIN" or "LOGIN". */
  authMethod?: string;
  /** The connection's id: equal ids mean one reused connection. */
  sessionId: string;
  /** The name the client gave in EHLO/HELO (tells apart relay instances that set their own). */
  clientName: string;
  /**
   * Set when the connection was gone by the time the 250 was due (the client died or gave up while
   * a slow reply was pending): the message was taken, but its sender cannot know it.
   */
  unanswered?: true;
}

export interface MessageFilter {
  /** Keep messages with an envelope recipient containing this text. */
  to?: string;
}

/** The messages that match the filter (all of them without one). */
export function filterMessages(
  messages: ReceivedMessage[],
  filter: MessageFilter = {},
): ReceivedMessage[] {
  const { to } = filter;
  return to === undefined
    ? [...messages]
    : messages.filter((m) => m.rcptTo.some((r) => r.includes(to)));
}

export interface SmtpSink {
  port: number;
  host: string;
  tls: SinkTls;
  /**
   * How to reach it, in the relay's SMTP_URL schemes: smtps://user:pass@host:port (implicit TLS),
   * smtp://user:pass@host:port (STARTTLS), smtp+insecure://host:port (no TLS).
   */
  url: string;
  /** Accepted messages, oldest first. */
  messages: ReceivedMessage[];
  /**
   * Resolves once at least `count` messages arrived (with all of them); rejects on timeout. With
   * `filter.to`, only messages with a recipient containing that text count and are returned, so
   * tests sharing a sink can each wait for their own (unique) recipients.
   */
  waitFor(count: number, timeoutMs?: number, filter?: MessageFilter): Promise<ReceivedMessage[]>;
  /** Forget the received messages. */
  clear(): void;
  /** Forget messages, recipient rejections, pending DATA failures and faults; listen if down. */
  reset(): Promise<void>;
  /** Answer RCPT TO for this address (any case) with this code from now on. */
  rejectRecipient(address: string, code: number, text?: string): void;
  /** Answer the next `times` (default 1) DATA with this code. */
  failData(code: number, text?: string, times?: number): void;
  /** Replace the fault plan (validated; see FaultPlan) and zero its statistics. */
  setFaults(plan: FaultPlan): void;
  /** No faults and no latency from now on; statistics are kept until the next plan or reset. */
  clearFaults(): void;
  /** The current plan and what it did so far. */
  faults(): { plan: FaultPlan; stats: FaultStats };
  /** Stop listening and drop open connections: clients get connection refused. */
  down(): Promise<void>;
  /** Listen again on the same port. */
  up(): Promise<void>;
  close(): Promise<void>;
  /** The exact bytes of a received message, for byte-level checks and the raw download. */
  bytes(id: number): Buffer | undefined;
}

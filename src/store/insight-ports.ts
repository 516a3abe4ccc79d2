/**
 * What the operator's overview reads about the queue and the smart host, cheaply: one command
 * each on Upstash. The smart host's outcomes are written inside the COMMIT script that already
 * runs (derived from the state it writes, see smart-host.ts), so the send path gains no command.
 */

/** The queue right now: due (and not leased), scheduled later, leased by a delivery run. */
export interface QueueDepth {
  due: number;
  scheduled: number;
  leased: number;
  /** The leased count stopped at QUEUE_LEASE_SCAN_MAX (more may be leased, counted as scheduled). */
  leasedCapped: boolean;
  /** The message due longest, and since when (ms); null when none is due. */
  oldestDue: { id: string; dueAt: number } | null;
}

/** One attempt's outcome at the smart host: its reply, when, for which email. */
export interface HostOutcome {
  code: number | null;
  enhanced?: string;
  text: string;
  at: number;
  emailId: string;
}

export interface SmartHostOutcomes {
  /** The latest attempt that delivered to at least one recipient. */
  lastSuccess: HostOutcome | null;
  /** The latest attempt the smart host refused (4xx, 5xx) or that got no answer. */
  lastRefusal: HostOutcome | null;
}

export interface QueueInsight {
  /** Counts the queue at `now`; leases last at most `leaseMs` (one command). */
  queueDepth(now: number, leaseMs: number): Promise<QueueDepth>;
  /** The smart host's latest success and latest refusal (one command). */
  smartHost(): Promise<SmartHostOutcomes>;
}

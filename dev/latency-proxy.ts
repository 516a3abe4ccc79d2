/**
 * A TCP proxy that puts distance between a client and a server: every chunk waits half the
 * round-trip time before it is passed on, each way, in order. The smart hosts operators use are
 * 10 to 80 ms away, where round trips, not CPU, decide throughput; on loopback they cost nothing,
 * so `npm run bench:throughput` measures through this.
 *
 * It also counts the round trips each connection makes: a turn is a client write that follows
 * something from the server (or opens the connection), so a pipelined envelope is one turn and
 * a command-reply-command exchange is one turn per command. Divided by the messages sent, that is
 * the figure the delivery path has to bring down.
 *
 * The delay is changed at run time (`setRtt`), so one proxy serves every round of a bench.
 */

import type { AddressInfo } from "node:net";
import { connect, createServer, type Server, type Socket } from "node:net";

export interface LatencyProxy {
  /** 127.0.0.1 and the port the proxy listens on. */
  host: string;
  port: number;
  /** The round-trip time added from now on (ms); connections already open follow it too. */
  setRtt(ms: number): void;
  /**
   * Since the last reset: client turns (round trips), connections opened, the most connections
   * open at once (`peak`: what a connection cap must bound), and the client's think time (ms from
   * the server's last bytes reaching the client to the client's next write, summed over turns):
   * time a connection sat idle on the client's side.
   */
  counts(): { turns: number; connections: number; peak: number; thinkMs: number; writes: number };
  reset(): void;
  close(): Promise<void>;
}

export async function startLatencyProxy(target: {
  host: string;
  port: number;
}): Promise<LatencyProxy> {
  let rtt = 0;
  let turns = 0;
  let connections = 0;
  // Client connections open now, and the most open at once since the last reset.
  let live = 0;
  let peak = 0;
  let thinkMs = 0;
  // Client chunks: a turn sent in several pieces is exposed to Nagle's algorithm on a real path.
  let writes = 0;
  // Bumped by reset: a gap that began before it (idle between rounds) is not think time.
  let generation = 0;
  const open = new Set<Socket>();

  // Chunks of one direction leave in the order they came: timers of equal delay fire in order,
  // and the delay only changes between rounds.
  const pass = (to: Socket, chunk: Buffer, delivered?: () => void) => {
    const half = rtt / 2;
    const write = () => {
      if (to.destroyed) return;
      to.write(chunk);
      delivered?.();
    };
    if (half <= 0) write();
    else setTimeout(write, half);
  };

  const server: Server = createServer((client) => {
    connections++;
    peak = Math.max(peak, ++live);
    client.once("close", () => live--);
    let serverSpoke = true;
    let reachedClientAt = 0;
    let reachedIn = generation;
    const upstream = connect(target.port, target.host);
    // The proxy must add only its delay: with Nagle's algorithm on, a chunk written while an
    // earlier one is unacknowledged waits for the peer's delayed ACK (40 ms on Linux), which
    // would punish a client that writes a pipelined turn in several pieces.
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    open.add(client);
    open.add(upstream);
    client.on("data", (chunk: Buffer) => {
      writes++;
      if (serverSpoke) {
        turns++;
        if (reachedClientAt > 0 && reachedIn === generation)
          thinkMs += performance.now() - reachedClientAt;
      }
      serverSpoke = false;
      pass(upstream, chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      serverSpoke = true;
      pass(client, chunk, () => {
        reachedClientAt = performance.now();
        reachedIn = generation;
      });
    });
    const end = (other: Socket) => () => {
      const half = rtt / 2;
      setTimeout(() => other.end(), half);
    };
    client.on("end", end(upstream));
    upstream.on("end", end(client));
    const drop = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on("error", drop);
    upstream.on("error", drop);
    client.on("close", () => open.delete(client));
    upstream.on("close", () => open.delete(upstream));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: "127.0.0.1",
    port,
    setRtt: (ms) => {
      rtt = ms;
    },
    counts: () => ({ turns, connections, peak, thinkMs, writes }),
    reset: () => {
      turns = 0;
      connections = 0;
      peak = live;
      thinkMs = 0;
      writes = 0;
      generation++;
    },
    close: async () => {
      for (const s of open) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

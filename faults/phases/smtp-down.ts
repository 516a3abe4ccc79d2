/** Phase 2, SMTP down: the server stops listening for a window while sends go on. */
import { sleep } from "../async.ts";
import type { FaultRun } from "../context.ts";

export async function smtpDown(run: FaultRun, count: number, outageMs: number): Promise<void> {
  await run.phase("SMTP down", async () => {
    await run.smtp.down();
    const from = Date.now();
    const batch = run.plan("smtpdown", count);
    for (const s of batch) {
      await run.send(s);
      await sleep((outageMs * 0.6) / batch.length);
    }
    await sleep(outageMs - (Date.now() - from));
    await run.smtp.up();
  });
}

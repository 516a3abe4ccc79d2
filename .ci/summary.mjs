// Prints vitest's totals from its JSON report as one plain line: "vitest: N passed, N failed, N skipped".
import { readFileSync } from "node:fs";

const r = JSON.parse(readFileSync(".vitest-report.json", "utf8"));
const skipped = r.numPendingTests + r.numTodoTests;
console.log(`vitest: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);

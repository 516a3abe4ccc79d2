import { describe, expect, it } from "vitest";
import { formFailure, intakeError } from "../../src/http/intake.ts";
import { REJECTION_REASONS as FORM_COUNTERS } from "../../src/intake/forms/forms.ts";
import { REJECTION_REASONS as HOOK_COUNTERS } from "../../src/intake/hooks/hooks.ts";
import { counterOf, INTAKE_REASONS, reject } from "../../src/intake/result.ts";

describe("intake rejections", () => {
  it("counts every reason under a counter that GET /forms/:id or GET /hooks/:id shows, or not at all", () => {
    for (const reason of INTAKE_REASONS) {
      const form = counterOf("form", reason);
      const hook = counterOf("hook", reason);
      if (form !== null) expect(FORM_COUNTERS).toContain(form);
      if (hook !== null) expect(HOOK_COUNTERS).toContain(hook);
    }
    // Every counter shown can be reached by some reason.
    for (const c of FORM_COUNTERS)
      expect(INTAKE_REASONS.some((r) => counterOf("form", r) === c)).toBe(true);
    for (const c of HOOK_COUNTERS)
      expect(INTAKE_REASONS.some((r) => counterOf("hook", r) === c)).toBe(true);
  });

  it("answers every reason with a Resend-shaped error, naming the field in the message", () => {
    for (const reason of INTAKE_REASONS) {
      const err = intakeError("form", reject(reason, "is wrong", { field: "email" }));
      expect(err.status).toBeGreaterThanOrEqual(200);
      expect(err.toBody().statusCode).toBe(err.status);
    }
    expect(
      intakeError("form", reject("invalid_field", "is wrong", { field: "email" })).message,
    ).toBe("email: is wrong");
    // A failed proof says nothing of which part failed.
    const proofs = (["unauthorized", "stale_timestamp", "client_address"] as const).map((r) =>
      intakeError("hook", reject(r, "detail")).toBody(),
    );
    expect(new Set(proofs.map((b) => JSON.stringify(b))).size).toBe(1);
    expect(proofs[0]?.statusCode).toBe(401);
  });

  it("gives a plain form post's error redirect the counted reason as its code", () => {
    expect(formFailure(reject("missing_field", "is required", { field: "name" }))).toMatchObject({
      code: "missing_field",
      field: "name",
    });
    expect(formFailure(reject("unsupported_type", "no")).code).toBe("invalid_body");
    expect(formFailure(reject("not_found", "no")).code).toBe("not_found");
    expect(formFailure(reject("verifier_unavailable", "later")).code).toBe("unavailable");
  });
});

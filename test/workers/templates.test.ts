import { describe, expect, it } from "vitest";
import { TooLargeError, ValidationError } from "../../src/errors.ts";
import {
  checkTemplate,
  MAX_LIST_ITEMS,
  renderTemplate,
  renderVariables,
  templateVariables,
} from "../../src/templates/render.ts";
import {
  newTemplate,
  publishedTemplate,
  renderPublished,
  TEMPLATE_LIMITS,
} from "../../src/templates/template.ts";

const refused = (template: string) => {
  try {
    checkTemplate(template, "html");
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return (err as ValidationError).message;
  }
  throw new Error(`template was accepted: ${template}`);
};

describe("templates", () => {
  it("renders fields, dotted paths and lists, and a missing value as empty", () => {
    const data = {
      repo: { name: "relay" },
      commits: [{ message: "one" }, { message: "two" }],
      tags: ["a", "b"],
    };
    const t = "{{repo.name}}:{{#commits}} {{message}};{{/commits}} [{{tags}}] <{{missing.deep}}>";
    checkTemplate(t, "text");
    expect(renderTemplate(t, data, "text")).toBe("relay: one; two; [a, b] <>");
  });

  it("escapes every value in HTML, so a submitted value never becomes markup", () => {
    const out = renderTemplate("<p>{{name}}</p>", { name: `<script>x</script>"'&` }, "html");
    expect(out).toBe("<p>&lt;script&gt;x&lt;/script&gt;&quot;&#39;&amp;</p>");
  });

  it("keeps line breaks and control characters out of a header", () => {
    const out = renderTemplate(
      "New: {{subject}}",
      { subject: "hi\r\nBcc: x@evil.test\u2028!" },
      "header",
    );
    expect(out).toBe("New: hi Bcc: x@evil.test !");
    expect(out).not.toMatch(/[\r\n]/);
  });

  it("refuses unescaped output, partials and delimiter changes, naming the field", () => {
    expect(refused("{{{name}}}")).toMatch(/^html: .*escaped/);
    expect(refused("{{&name}}")).toMatch(/^html: /);
    expect(refused("{{>partial}}")).toMatch(/partials/);
    expect(refused("{{=<% %>=}}")).toMatch(/delimiters/);
    expect(refused("{{#open}}")).toMatch(/not a valid template/);
  });

  it("finds data only: names of built-in methods render empty, never call anything", () => {
    const t = "[{{constructor}}|{{items.map}}|{{#toString}}x{{/toString}}|{{name.length}}]";
    checkTemplate(t, "text");
    expect(renderTemplate(t, { items: [1], name: "abc" }, "text")).toBe("[|||3]");
    expect(renderTemplate("{{items.length}}", { items: [1, 2, 3] }, "text")).toBe("3");
  });

  it("resolves names to the data's own fields only", () => {
    // A payload that names __proto__ gets no prototype tricks: it is just a field.
    const data = JSON.parse('{"__proto__": {"polluted": "yes"}, "ok": "fine"}');
    expect(renderTemplate("{{ok}}/{{polluted}}", data, "text")).toBe("fine/");
  });

  it("bounds lists and section depth so a payload cannot make rendering explode", () => {
    const items = Array.from({ length: 1000 }, (_, i) => i);
    expect(renderTemplate("{{#items}}x{{/items}}", { items }, "text")).toBe(
      "x".repeat(MAX_LIST_ITEMS),
    );
    expect(refused("{{#a}}{{#b}}{{#c}}{{#d}}{{/d}}{{/c}}{{/b}}{{/a}}")).toMatch(/nests/);
  });

  it("renders a null or scalar payload as empty values rather than failing, the scalar as {{.}}", () => {
    for (const data of [null, undefined, 42, "text", true])
      expect(renderTemplate("[{{a}}|{{#b}}x{{/b}}]", data, "text")).toBe("[|]");
    expect(renderTemplate("<{{.}}>", 42, "text")).toBe("<42>");
    expect(renderTemplate("<{{.}}>", null, "text")).toBe("<>");
  });

  it("refuses data that would render too large inside repeated sections", () => {
    const big = "x".repeat(100_000);
    const data = { items: Array.from({ length: 100 }, () => ({ big })) };
    const t = "{{#items}}{{#items}}{{big}}{{/items}}{{/items}}";
    checkTemplate(t, "text");
    expect(() => renderTemplate(t, data, "text")).toThrow(TooLargeError);
  });
});

describe("variable templates (Resend's {{{NAME}}})", () => {
  it("lists the names a template uses, and refuses sections, partials and dotted names", () => {
    expect(templateVariables("Hi {{{NAME}}}, {{NAME}} {{ COUNT }}{{! note }}", "html")).toEqual([
      "NAME",
      "COUNT",
    ]);
    for (const t of ["{{#A}}x{{/A}}", "{{^A}}x{{/A}}", "{{>p}}", "{{=<% %>=}}", "{{{a.b}}}"])
      expect(() => templateVariables(t, "html")).toThrow(ValidationError);
    expect(() => templateVariables("{{{A}}", "subject")).toThrow(/^subject: /);
  });

  it("escapes values in HTML whichever braces the template uses; text stays as given", () => {
    const values = { A: `<img src=x onerror="y">`, N: 3 };
    const escaped = "&lt;img src&#61;x onerror&#61;&quot;y&quot;&gt;";
    expect(renderVariables("<p>{{{A}}}|{{A}}|{{&A}}|{{{N}}}</p>", values, "html")).toBe(
      `<p>${escaped}|${escaped}|${escaped}|3</p>`,
    );
    expect(renderVariables("{{{A}}}", values, "text")).toBe(values.A);
  });

  it("turns line breaks and control characters into spaces in a header", () => {
    const out = renderVariables("Re: {{{S}}}", { S: "a\r\nBcc: x@y\u2028z\u0000" }, "header");
    expect(out).toBe("Re: a Bcc: x@y z");
    expect(out).not.toMatch(/[\r\n]/);
  });

  it("finds only the values given, never a prototype's", () => {
    expect(renderVariables("[{{{constructor}}}|{{{toString}}}]", {}, "text")).toBe("[|]");
  });

  it("refuses values that would render too large", () => {
    const big = "x".repeat(1_000_000);
    expect(() => renderVariables("{{{A}}}".repeat(5), { A: big }, "text")).toThrow(TooLargeError);
  });
});

describe("the template model", () => {
  const input = {
    name: "t",
    html: "<p>{{{A}}}</p>",
    variables: [{ key: "A", type: "string" as const }],
  };

  it("refuses a template over the record limit, naming the limit", () => {
    const html = "x".repeat(TEMPLATE_LIMITS.maxRecordBytes);
    expect(() => newTemplate({ ...input, html }, "k", 0)).toThrow(TooLargeError);
  });

  it("refuses __proto__ and other names starting with __", () => {
    const bad = { ...input, html: "x", variables: [{ key: "__proto__", type: "string" as const }] };
    expect(() => newTemplate(bad, "k", 0)).toThrow(/variables\[0\]\.key: __proto__ is reserved/);
  });

  it("renders only the published version, with fallbacks and type checks", () => {
    const draft = newTemplate(
      { ...input, variables: [{ key: "A", type: "number" as const, fallback_value: 7 }] },
      "k",
      0,
    );
    expect(() => renderPublished(draft, {})).toThrow(/^template\.id: is not published/);
    const live = publishedTemplate(draft, 1);
    expect(renderPublished(live, {}).html).toBe("<p>7</p>");
    expect(renderPublished(live, { A: 8 }).html).toBe("<p>8</p>");
    expect(() => renderPublished(live, { A: "8" })).toThrow(
      "template.variables.A: must be a number",
    );
    expect(publishedTemplate(live, 2)).toBe(live);
  });
});

// Issuing advisories and rectification orders (admins of national and secondary nodes):
// POST /federation/advisories and /federation/orders. Every field is checked before the call
// and the API's refusal (its `field`) is shown next to the field it names.

import { api, ApiError } from "../api.js";
import { h } from "../dom.js";

const ID = /^[A-Za-z0-9\-_.:]{1,64}$/;
const SEVERITIES = ["critical", "high", "medium", "low", "info"];

function list(text) {
  return text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
}

/** A form of `fields` ({name, label, kind, help, check(value) -> message}); `submit(values)`
 * returns the API's promise. `apiField(name)` maps an API field to one of ours. */
function issueForm(prefix, title, fields, submit, apiField, onDone) {
  const inputs = new Map();
  const errors = new Map();
  const rows = fields.map((f) => {
    const id = `${prefix}-${f.name}`;
    let input;
    if (f.kind === "textarea") input = h("textarea", { id, name: f.name, rows: 3 });
    else if (f.kind === "select") {
      input = h("select", { id, name: f.name }, f.options.map((o) => h("option", { value: o }, o)));
    } else input = h("input", { id, name: f.name, type: f.kind || "text", autocomplete: "off" });
    const error = h("p", { class: "field-error", id: `${id}-error`, role: "alert" });
    input.setAttribute("aria-describedby", f.help ? `${id}-help ${id}-error` : `${id}-error`);
    inputs.set(f.name, input);
    errors.set(f.name, error);
    return h("div", { class: "field" }, h("label", { for: id }, f.label), input,
             f.help ? h("p", { class: "help", id: `${id}-help` }, f.help) : null, error);
  });
  const done = h("p", { role: "status", class: "muted" });
  const form = h("form", { class: "stack-form", novalidate: true, "aria-label": title },
    rows, h("button", { type: "submit" }, title), done);

  function mark(name, message) {
    errors.get(name).textContent = message;
    if (message) inputs.get(name).setAttribute("aria-invalid", "true");
    else inputs.get(name).removeAttribute("aria-invalid");
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    done.textContent = "";
    const values = {};
    let first = null;
    for (const f of fields) {
      values[f.name] = inputs.get(f.name).value.trim();
      const wrong = f.check ? f.check(values[f.name]) : "";
      mark(f.name, wrong);
      if (wrong && !first) first = inputs.get(f.name);
    }
    if (first) {
      first.focus();
      return;
    }
    try {
      const made = await submit(values);
      done.textContent = `${made.id} issued.`;
      form.reset();
      onDone();
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      const name = apiField(err.field || "") || fields[0].name;
      mark(name, err.message);
      inputs.get(name).focus();
    }
  });
  return form;
}

const required = (what) => (v) => (v ? "" : `Enter ${what}.`);
const checkId = (v) => (!v ? "Enter an id." : ID.test(v) ? ""
  : "An id is 1-64 letters, digits or - _ . :");

export function advisoryForm(onDone) {
  return issueForm("adv", "Issue advisory", [
    { name: "id", label: "Advisory id", help: "e.g. CNVD-2026-01234", check: checkId },
    { name: "title", label: "Title", check: required("a title") },
    { name: "severity", label: "Severity", kind: "select", options: SEVERITIES },
    { name: "cpe", label: "Affected products (CPE)", kind: "textarea",
      help: "One CPE 2.3 name a line, e.g. cpe:2.3:h:siemens:s7-1200:*:*:*:*:*:*:*:*",
      check: (v) => (!v ? "Enter at least one CPE." : list(v).every((c) => c.startsWith("cpe:2.3:"))
        ? "" : "Each line is a CPE 2.3 name starting with cpe:2.3:") },
    { name: "below", label: "Fixed in version (optional)", help: "affected below this version" },
    { name: "regions", label: "Regions (optional)", help: "GB/T 2260 codes, comma-separated",
      check: (v) => (list(v).every((r) => /^\d{2}(\d{2}){0,2}$/.test(r)) ? ""
        : "Regions are codes of 2, 4 or 6 digits, e.g. 32 or 320500.") },
    { name: "description", label: "Description (optional)", kind: "textarea" },
  ], (v) => api("/federation/advisories", { method: "POST", show: false, body: {
    id: v.id, title: v.title, severity: v.severity, published: new Date().toISOString(),
    description: v.description, regions: list(v.regions),
    affected: list(v.cpe).map((cpe) => (v.below ? { cpe, versionEndExcluding: v.below }
                                                : { cpe })) } }),
  (field) => (field.startsWith("affected") ? "cpe" : field.split(/[.[]/)[0] === "published"
    ? "id" : ["id", "title", "severity", "regions", "description"].includes(field) ? field : ""),
  onDone);
}

export function orderForm(onDone) {
  return issueForm("ord", "Issue order", [
    { name: "id", label: "Order id", help: "e.g. RO-2026-007", check: checkId },
    { name: "targets", label: "Enterprises", help: "node ids under this node, comma-separated",
      check: (v) => (!list(v).length ? "Name at least one enterprise."
        : list(v).every((t) => ID.test(t)) ? "" : "Node ids are letters, digits or - _ . :") },
    { name: "title", label: "Title", check: required("a title") },
    { name: "action", label: "Action required", kind: "textarea", check: required("the action") },
    { name: "deadline", label: "Deadline", kind: "date",
      check: (v) => (!v ? "Choose a deadline." : new Date(`${v}T23:59:59`) > new Date() ? ""
        : "The deadline is in the past.") },
    { name: "advisory", label: "Advisory id (optional)",
      check: (v) => (!v || ID.test(v) ? "" : "An id is 1-64 letters, digits or - _ . :") },
  ], (v) => api("/federation/orders", { method: "POST", show: false, body: {
    id: v.id, targets: list(v.targets), title: v.title, action: v.action,
    deadline: new Date(`${v.deadline}T23:59:59`).toISOString(), advisory_id: v.advisory || null } }),
  (field) => ({ id: "id", targets: "targets", title: "title", action: "action",
                deadline: "deadline", advisory_id: "advisory" })[field.split(/[.[]/)[0]] || "",
  onDone);
}

// Identifiers: resolve one (prefix/suffix) through the node's API (GET /identifiers/{handle},
// the node's own identifier service) and show its values as a table; operators record a
// product and link it to its identifier (POST /products, PUT /products/{id}/identifier).
// Every field says what is wrong next to it.

import { api, ApiError } from "../api.js";
import { clear, h } from "../dom.js";

const HANDLE = /^[^/\s]+\/\S+$/;

/** "" when `text` looks like an identifier, else what is wrong. */
export function checkHandle(text, optional = false) {
  if (!text) return optional ? "" : "Enter an identifier, e.g. 88.100.5/PUMP-1.";
  if (/\s/.test(text)) return "An identifier has no spaces.";
  if (!text.includes("/")) return "An identifier is prefix/suffix: the / is missing.";
  if (!HANDLE.test(text)) return "An identifier is prefix/suffix, e.g. 88.100.5/PUMP-1: " +
    "both parts are needed.";
  return "";
}

function field(id, label, input, help) {
  const error = h("p", { class: "field-error", id: `${id}-error`, role: "alert" });
  input.setAttribute("aria-describedby", help ? `${id}-help ${id}-error` : `${id}-error`);
  return {
    el: h("div", { class: "field" }, h("label", { for: id }, label), input,
          help ? h("p", { class: "help", id: `${id}-help` }, help) : null, error),
    error,
    set(message) {
      error.textContent = message;
      if (message) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    },
  };
}

function dataText(data) {
  if (!data || typeof data !== "object") return String(data);
  if (data.format === "string") return String(data.value);
  return `${data.format}: ${JSON.stringify(data.value)}`;
}

export async function render(main, args, ctx) {
  main.append(h("h1", {}, "Identifiers"));
  const input = h("input", { id: "resolve-handle", name: "handle", type: "text",
                             autocomplete: "off", spellcheck: "false",
                             placeholder: "88.100.5/PUMP-1" });
  const handleField = field("resolve-handle", "Identifier", input, "prefix/suffix");
  const result = h("div", { class: "resolved", "aria-live": "polite" });
  const form = h("form", { class: "stack-form", novalidate: true, "aria-label": "Resolve" },
    handleField.el, h("button", { type: "submit" }, "Resolve"));
  main.append(h("section", { "aria-labelledby": "resolve-h" },
    h("h2", { id: "resolve-h" }, "Resolve"), form, result));

  async function resolve(handle) {
    handleField.set("");
    clear(result);
    const wrong = checkHandle(handle);
    if (wrong) {
      handleField.set(wrong);
      input.focus();
      return;
    }
    try {
      const answer = await api(`/identifiers/${handle.split("/").map(encodeURIComponent)
        .join("/")}`, { show: false });
      result.append(h("table", { class: "data handle-values" },
        h("caption", {}, "Values of ", h("code", { text: answer.handle })),
        h("thead", {}, h("tr", {}, ["Index", "Type", "Data"].map(
          (c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, answer.values.map((v) => h("tr", {},
          h("td", { class: "num", "data-label": "Index", text: v.index }),
          h("td", { "data-label": "Type", text: v.type }),
          h("td", { "data-label": "Data", class: "handle-data", text: dataText(v.data) }))))));
    } catch (err) {
      handleField.set(err instanceof ApiError ? err.message : String(err));
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const handle = input.value.trim();
    if (handle && !checkHandle(handle)) window.history.replaceState(null, "", `#/identifiers/${handle}`);
    resolve(handle);
  });
  if (args.length) {
    input.value = args.join("/");
    await resolve(input.value);
  }
  if (ctx.can("operator")) main.append(await productSection(ctx));
  return null;
}

/** Record a product and link it to its identifier (operators; the API checks the prefix). */
async function productSection(ctx) {
  const list = h("div", { class: "table-wrap" });
  const serial = h("input", { id: "product-serial", name: "serial", type: "text",
                              autocomplete: "off", maxlength: 255 });
  const model = h("input", { id: "product-model", name: "model", type: "text",
                             autocomplete: "off", maxlength: 255 });
  const handle = h("input", { id: "product-handle", name: "handle", type: "text",
                              autocomplete: "off", spellcheck: "false",
                              placeholder: "88.100.5/PUMP-1" });
  const fSerial = field("product-serial", "Serial number", serial);
  const fModel = field("product-model", "Model", model);
  const fHandle = field("product-handle", "Identifier", handle,
                        "prefix/suffix, under one of the tenant's prefixes");
  const done = h("p", { role: "status", class: "muted" });
  const form = h("form", { class: "stack-form", novalidate: true,
                           "aria-label": "Record a product" },
    fSerial.el, fModel.el, fHandle.el, h("button", { type: "submit" }, "Record and link"), done);

  async function load() {
    const products = await api("/products", { query: { ...ctx.tenantQuery, limit: 50 } });
    clear(list);
    if (!products.length) {
      list.append(h("p", { class: "muted" }, "No products recorded yet."));
      return;
    }
    list.append(h("table", { class: "data products" },
      h("caption", { class: "sr-only" }, "Products"),
      h("thead", {}, h("tr", {}, ["Serial", "Model", "Identifier"].map(
        (c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, products.slice(-50).reverse().map((p) => h("tr", {},
        h("td", { "data-label": "Serial", text: p.serial }),
        h("td", { "data-label": "Model", text: p.model }),
        h("td", { "data-label": "Identifier" }, p.identifier
          ? h("a", { href: `#/identifiers/${p.identifier}`, text: p.identifier }) : "–"))))));
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    done.textContent = "";
    const values = { serial: serial.value.trim(), model: model.value.trim(),
                     handle: handle.value.trim() };
    fSerial.set(values.serial ? "" : "Enter the serial number.");
    fModel.set(values.model ? "" : "Enter the model.");
    fHandle.set(checkHandle(values.handle));
    const first = [[fSerial, serial], [fModel, model], [fHandle, handle]]
      .find(([f]) => f.error.textContent);
    if (first) {
      first[1].focus();
      return;
    }
    const fields = { serial: fSerial, model: fModel, handle: fHandle };
    try {
      const product = await api("/products", { method: "POST", show: false, body: {
        ...ctx.tenantQuery, serial: values.serial, model: values.model } });
      try {
        await api(`/products/${product.id}/identifier`, { method: "PUT", show: false,
                                                          body: { handle: values.handle } });
      } catch (err) {
        fHandle.set(`Product ${product.serial} was recorded, but not linked: ${err.message}`);
        await load();
        return;
      }
      done.textContent = `Recorded ${product.serial}, linked to ${values.handle}.`;
      form.reset();
      await load();
    } catch (err) {
      const target = fields[err.field] || fSerial;
      target.set(err instanceof ApiError ? err.message : String(err));
    }
  });
  await load();
  return h("section", { "aria-labelledby": "products-h" },
    h("h2", { id: "products-h" }, "Products and their identifiers"), form, list);
}

// The login page: paste an API token (created with `millnet token create` or by an admin through
// the API). It is kept in sessionStorage (gone when the tab closes) and sent as a bearer token.

import { api, ApiError, session } from "../api.js";
import { h } from "../dom.js";

export function renderLogin(main, message, onLoggedIn) {
  const input = h("input", {
    id: "token", name: "token", type: "password", autocomplete: "off", spellcheck: "false",
    required: true, "aria-describedby": "token-help token-error",
  });
  const error = h("p", { id: "token-error", class: "field-error", role: "alert" });
  const submit = h("button", { type: "submit" }, "Log in");
  const form = h("form", { class: "login", novalidate: true },
    h("h1", {}, "Log in"),
    message ? h("p", { class: "notice", role: "status", text: message }) : null,
    h("label", { for: "token" }, "API token"),
    input,
    h("p", { id: "token-help", class: "help" },
      "A token of this node's API, e.g. ", h("code", {}, "mn_…"),
      ". It stays in this browser tab only."),
    error,
    submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    error.textContent = "";
    input.removeAttribute("aria-invalid");
    if (!token) return invalid("Enter a token.");
    if (/\s/.test(token)) return invalid("A token has no spaces.");
    submit.disabled = true;
    session.token = token;
    const previous = session.onUnauthenticated;
    session.onUnauthenticated = () => {};  // a bad token is this form's error, not a logout
    try {
      await api("/me", { show: false });
      onLoggedIn();
    } catch (err) {
      session.token = null;
      if (err instanceof ApiError && err.status === 401) {
        invalid("This token is not valid (unknown or revoked).");
      } else {
        invalid(`Cannot log in: ${err.message}`);
      }
    } finally {
      session.onUnauthenticated = previous;
      submit.disabled = false;
    }
    return undefined;
  });

  function invalid(text) {
    error.textContent = text;
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }

  main.append(form);
  input.focus();
}

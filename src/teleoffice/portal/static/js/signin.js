// The sign-in page. Errors are said plainly: wrong username or password, too
// many attempts (with the wait the server asks for), server unreachable.

import { api, ApiError } from "./api.js";
import { t } from "./i18n.js";
import { h, replace, field } from "./dom.js";

export function renderSignIn(root, { notice, onSignedIn }) {
  const user = field({ label: t("signin.username"), name: "username", autocomplete: "username", required: true });
  const pass = field({ label: t("signin.password"), name: "password", type: "password", autocomplete: "current-password", required: true });
  const error = h("p", { class: "notice notice-error", role: "alert", hidden: true, "data-role": "signin-error" });
  const submit = h("button", { type: "submit", class: "btn btn-primary btn-block" }, t("signin.submit"));
  let retryTimer = null;

  function showError(text) {
    error.textContent = text;
    error.hidden = false;
  }

  function rateLimited(seconds) {
    // Count down so the user knows when to try again; the button waits too.
    clearInterval(retryTimer);
    let left = Math.max(1, Math.ceil(seconds || 1));
    submit.disabled = true;
    showError(t("signin.rate_limited", { seconds: left }));
    retryTimer = setInterval(() => {
      left -= 1;
      if (left <= 0) {
        clearInterval(retryTimer);
        submit.disabled = false;
        showError(t("signin.rate_limited_over"));
      } else {
        showError(t("signin.rate_limited", { seconds: left }));
      }
    }, 1000);
  }

  const form = h(
    "form",
    {
      class: "signin-form",
      novalidate: true,
      onsubmit: async (event) => {
        event.preventDefault();
        const username = user.input.value.trim();
        const password = pass.input.value;
        if (!username || !password) {
          showError(t("signin.missing"));
          (username ? pass.input : user.input).focus();
          return;
        }
        error.hidden = true;
        submit.disabled = true;
        submit.textContent = t("signin.working");
        try {
          await api("POST", "/api/login", { username, password });
        } catch (err) {
          submit.disabled = false;
          submit.textContent = t("signin.submit");
          if (err instanceof ApiError && err.status === 401) {
            showError(t("signin.wrong"));
            pass.input.value = "";
            pass.input.focus();
          } else if (err instanceof ApiError && err.status === 429) {
            rateLimited(err.retryAfter);
          } else if (err instanceof ApiError && err.status === 0) {
            showError(t("signin.unreachable"));
          } else {
            showError(t("signin.error", { message: err.message }));
          }
          return;
        }
        clearInterval(retryTimer);
        onSignedIn();
      },
    },
    user.field,
    pass.field,
    error,
    submit,
  );
  replace(
    root,
    h(
      "main",
      { id: "main", class: "signin" },
      h(
        "div",
        { class: "signin-card" },
        h("p", { class: "brand brand-large" }, h("span", { class: "brand-mark", "aria-hidden": "true" }), t("app.name")),
        h("h1", {}, t("signin.title")),
        h("p", { class: "muted" }, t("signin.lead")),
        notice ? h("p", { class: "notice", role: "status" }, notice) : null,
        form,
      ),
    ),
  );
  user.input.focus();
}

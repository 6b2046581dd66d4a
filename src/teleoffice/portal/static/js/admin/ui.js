// Pieces the admin pages share: toolbars, tables that become cards on a
// phone, tags, confirmations, one-time secrets, and polling.

import { h, replace, uid } from "../dom.js";
import { t } from "../i18n.js";

export { panel, loading, loadFailed } from "../views/common.js";

/** A row of controls above a list: search, filters, the main action. */
export function toolbar(...children) {
  return h("div", { class: "admin-toolbar" }, children);
}

/** A search box that calls `onInput(text)` as the user types. */
export function searchBox({ label, placeholder, onInput, role }) {
  const id = uid("search");
  const input = h("input", { id, type: "search", class: "admin-search-input", placeholder, autocomplete: "off", "data-role": role || "search", oninput: () => onInput(input.value.trim().toLowerCase()) });
  return { field: h("div", { class: "admin-search" }, h("label", { for: id, class: "visually-hidden" }, label), input), input };
}

/** A link styled as a button. */
export function linkButton(href, text, { primary = false, role } = {}) {
  return h("a", { href, class: ["btn", primary ? "btn-primary" : null], "data-action": role || null }, text);
}

/** A small coloured label ("Admin", "Registered"...). kind: ok, warn, bad, info, muted. */
export function tag(text, kind = "muted", attrs = {}) {
  return h("span", { class: ["tag", `tag-${kind}`], ...attrs }, text);
}

/**
 * A table that reads as a table on a desktop and as one card per row on a
 * phone (admin.css uses each cell's data-label). columns: [{ label, cell(row),
 * className?, primary? }]; the primary column heads the card.
 */
export function dataTable({ columns, rows, caption, empty, role, rowRole }) {
  if (!rows.length) return h("p", { class: "admin-empty muted", "data-role": role ? `${role}-empty` : null }, empty);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "admin-table", "data-role": role || null },
      caption ? h("caption", { class: "visually-hidden" }, caption) : null,
      h("thead", {}, h("tr", {}, columns.map((col) => h("th", { scope: "col", class: col.className || null }, col.label)))),
      h(
        "tbody",
        {},
        rows.map((row) =>
          h(
            "tr",
            { "data-role": rowRole ? rowRole(row) : null },
            columns.map((col) => {
              const content = col.cell(row);
              return h(col.primary ? "th" : "td", { scope: col.primary ? "row" : null, class: [col.className, col.primary ? "cell-primary" : null], "data-label": col.label }, content === "" || content === null || content === undefined ? h("span", { class: "muted" }, "—") : content);
            }),
          ),
        ),
      ),
    ),
  );
}

/**
 * A button that asks once more before doing something that cannot be undone:
 * the first press shows "confirm" and "cancel" in its place.
 */
export function confirmButton({ label, question, confirmLabel, onConfirm, role, disabled, danger = true }) {
  const holder = h("div", { class: "confirm" });
  const first = h("button", { type: "button", class: ["btn", danger ? "btn-danger" : null], disabled, "data-action": role || null }, label);
  const initial = () => replace(holder, first);
  first.addEventListener("click", () => {
    const yes = h("button", { type: "button", class: ["btn", danger ? "btn-danger" : "btn-primary"], "data-action": role ? `${role}-confirm` : null }, confirmLabel || label);
    const no = h("button", { type: "button", class: "btn btn-quiet", onclick: () => { initial(); first.focus(); } }, t("admin.cancel"));
    yes.addEventListener("click", async () => {
      yes.disabled = true;
      no.disabled = true;
      try {
        await onConfirm();
      } finally {
        if (holder.isConnected) {
          initial();
          first.focus();
        }
      }
    });
    replace(holder, h("span", { class: "confirm-question", role: "alert" }, question), yes, no);
    yes.focus();
  });
  initial();
  return holder;
}

/** A secret shown once (a generated password), with a copy button. */
export function secretBox(label, value, note) {
  const code = h("code", { class: "secret-value", "data-role": "secret" }, value);
  const copy = h("button", {
    type: "button",
    class: "btn btn-quiet btn-small",
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(value);
        copy.textContent = t("admin.copied");
      } catch {
        // No clipboard (insecure origin): select the text for Ctrl+C instead.
        const range = document.createRange();
        range.selectNodeContents(code);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
      }
    },
  }, t("admin.copy"));
  return h("div", { class: "secret", role: "status" }, h("p", { class: "secret-label" }, label), h("div", { class: "secret-row" }, code, copy), note ? h("p", { class: "hint" }, note) : null);
}

/** A definition list of label/value pairs (only the pairs with a value). */
export function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.filter(([, value]) => value !== null && value !== undefined && value !== "").map(([label, value]) => h("div", { class: "fact" }, h("dt", {}, label), h("dd", {}, value))),
  );
}

/**
 * Call `load()` now and then every `seconds()` seconds while the page is
 * visible; returns stop(). A failed load is retried on the same schedule.
 */
export function poll(load, seconds) {
  let timer = null;
  let stopped = false;
  const schedule = () => {
    if (stopped) return;
    clearTimeout(timer);
    timer = setTimeout(run, Math.max(1, seconds()) * 1000);
  };
  async function run() {
    if (stopped) return;
    if (document.hidden) return; // resumed by visibilitychange
    try {
      await load();
    } catch (err) {
      console.warn("refresh failed", err); // the page shows its own error state
    }
    schedule();
  }
  const onVisible = () => {
    if (!document.hidden) run();
  };
  document.addEventListener("visibilitychange", onVisible);
  run();
  return () => {
    stopped = true;
    clearTimeout(timer);
    document.removeEventListener("visibilitychange", onVisible);
  };
}

/** "2 min", "1 h 5 min", "45 s": a span of seconds in words. */
export function span(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return t("admin.span.seconds", { n: s });
  const minutes = Math.floor(s / 60);
  if (minutes < 60) return t("admin.span.minutes", { n: minutes });
  const hours = Math.floor(minutes / 60);
  return t("admin.span.hours", { h: hours, m: minutes % 60 });
}

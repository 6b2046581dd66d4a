// Pieces the user's pages share: panels, loading and error states, and
// click-to-dial.

import { h, uid } from "../dom.js";
import { calls } from "../calls.js";

/** A titled panel: returns { panel, body }. */
export function panel(title, { className, actions, headingLevel = "h2", description } = {}) {
  const id = uid("panel");
  const body = h("div", { class: "panel-body" });
  const el = h(
    "section",
    { class: ["panel", className], "aria-labelledby": id },
    h("div", { class: "panel-head" }, h(headingLevel, { id, class: "panel-title" }, title), actions ? h("div", { class: "panel-actions" }, actions) : null),
    description ? h("p", { class: "panel-description muted" }, description) : null,
    body,
  );
  return { panel: el, body };
}

/** A placeholder while something loads. */
export function loading(t) {
  return h("p", { class: "loading muted", role: "status" }, t("common.loading"));
}

/** A failure to load, said plainly. */
export function loadFailed(t, err) {
  return h("p", { class: "notice notice-error", role: "alert" }, t("common.load_failed", { message: err && err.message ? err.message : String(err) }));
}

/**
 * Place a call to `number` for the user (T4); the dock shows its stages.
 * Barred and impossible numbers are refused by the API before anything rings:
 * the reason is shown as it comes.
 */
export async function dial(ctx, number) {
  const to = String(number || "").replace(/[\s().-]/g, "");
  if (!/^\+?[0-9*#]{1,32}$/.test(to)) {
    ctx.toast(ctx.t("dial.invalid"), "error");
    return null;
  }
  try {
    const placed = await ctx.api("POST", "/api/calls", { to });
    calls.placed(placed.id, to);
    return placed.id;
  } catch (err) {
    const key = err.status === 403 ? "dial.refused_barred" : err.status === 409 ? "dial.refused_busy" : "dial.refused";
    ctx.toast(ctx.t(key, { message: err.message }), "error");
    return null;
  }
}

/** A small "call" button for a number (directory, call log, search results). */
export function callButton(ctx, number, label) {
  return h(
    "button",
    {
      type: "button",
      class: "btn btn-call",
      "data-action": "dial",
      "data-number": number,
      "aria-label": label || ctx.t("dial.call_number", { number }),
      onclick: () => dial(ctx, number),
    },
    h("span", { class: "icon icon-phone", "aria-hidden": "true" }),
    h("span", { class: "btn-text" }, ctx.t("dial.call")),
  );
}

/** The presence dot and word for a state. */
export function presenceBadge(t, state, onThePhone) {
  const key = onThePhone ? "on_the_phone" : state;
  return h("span", { class: ["presence", `presence-${state}`], "data-state": state }, h("span", { class: "presence-dot", "aria-hidden": "true" }), t(`presence.state.${key}`));
}

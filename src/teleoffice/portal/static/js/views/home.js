// Home: where my calls ring now (and moving them), how my calls are handled,
// and my presence.

import { h, clear, replace, field, uid } from "../dom.js";
import { panel, loading, loadFailed, presenceBadge } from "./common.js";
import { when } from "../format.js";

/**
 * How the user's calls are handled right now, as plain sentences (i18n keys
 * with parameters): where they ring, what happens without an answer, when
 * busy, do not disturb and forwarding.
 */
export function handlingSummary(t, me, location) {
  const lines = [];
  const fallback = me.voicemail_enabled ? t("summary.to_voicemail") : t("summary.to_busy");
  if (me.dnd) {
    lines.push(t("summary.dnd", { then: fallback }));
  }
  if (me.forward_always) {
    lines.push(t("summary.forward_always", { number: me.forward_always }));
  }
  if (location.kind === "telecommuter") {
    lines.push(t("summary.rings_telecommuter", { number: location.number }));
  } else if (location.kind === "phone") {
    lines.push(location.phone === location.base_phone ? t("summary.rings_desk", { phone: location.phone }) : t("summary.rings_hotdesk", { phone: location.phone }));
  } else {
    lines.push(t("summary.rings_nowhere", { then: me.forward_busy ? t("summary.to_number", { number: me.forward_busy }) : fallback }));
  }
  if (location.kind !== "logged-out" && !me.dnd && !me.forward_always) {
    const then = me.forward_no_answer ? t("summary.to_number", { number: me.forward_no_answer }) : fallback;
    lines.push(t("summary.no_answer", { seconds: me.no_answer_timeout, then }));
    const busyThen = me.forward_busy ? t("summary.to_number", { number: me.forward_busy }) : fallback;
    lines.push(me.call_waiting ? t("summary.call_waiting_on", { then: busyThen }) : t("summary.call_waiting_off", { then: busyThen }));
  }
  return lines;
}

export function renderHome(root, ctx) {
  const { api, t, events, toast } = ctx;
  const grid = h("div", { class: "grid grid-home" });
  root.append(grid);

  const where = panel(t("home.where.title"), { className: "panel-where" });
  const summary = panel(t("home.summary.title"), { className: "panel-summary" });
  const presence = panel(t("home.presence.title"), { className: "panel-presence" });
  grid.append(where.panel, summary.panel, presence.panel);
  where.body.append(loading(t));
  summary.body.append(loading(t));
  presence.body.append(loading(t));

  let me = ctx.me;
  let tc = null; // GET /api/me/telecommuter
  let saved = [];

  async function load() {
    try {
      [me, tc, saved] = await Promise.all([api("GET", "/api/me"), api("GET", "/api/me/telecommuter"), api("GET", "/api/me/saved-numbers")]);
      Object.assign(ctx.me, me);
      renderWhere();
      renderSummary();
    } catch (err) {
      replace(where.body, loadFailed(t, err));
      clear(summary.body);
    }
  }

  function locationText(location) {
    if (location.kind === "telecommuter") return t("home.where.telecommuter", { number: location.number });
    if (location.kind === "phone") return location.phone === location.base_phone ? t("home.where.desk", { phone: location.phone }) : t("home.where.hotdesk", { phone: location.phone });
    return t("home.where.logged_out");
  }

  async function move(method, path, body, done) {
    try {
      tc = { ...tc, ...(await api(method, path, body)) };
      if (path === "/api/me/location") tc = await api("GET", "/api/me/telecommuter");
      toast(done, "success");
      renderWhere();
      renderSummary();
      focusWhere();
      return true;
    } catch (err) {
      toast(err.message, "error");
      return false;
    }
  }

  function telecommuterForm() {
    const listId = uid("saved");
    const number = field({ label: t("home.tc.number"), name: "tc-number", type: "tel", inputmode: "tel", autocomplete: "tel", list: listId, hint: t("home.tc.number_hint"), required: true });
    number.input.setAttribute("data-role", "tc-number");
    const save = h("input", { type: "checkbox", id: uid("save"), "data-role": "tc-save" });
    const error = h("p", { class: "notice notice-error", role: "alert", hidden: true, "data-role": "tc-error" });
    const chips = saved.length
      ? h(
          "div",
          { class: "chips", role: "group", "aria-label": t("home.tc.saved") },
          saved.map((s) =>
            h("button", { type: "button", class: "chip", "data-role": "saved-number", "data-number": s.number, onclick: () => { number.input.value = s.number; number.input.focus(); } }, s.label ? `${s.label} · ${s.number}` : s.number),
          ),
        )
      : null;
    return h(
      "form",
      {
        class: "tc-form",
        "data-role": "tc-form",
        onsubmit: async (event) => {
          event.preventDefault();
          const value = number.input.value.replace(/[\s().-]/g, "");
          if (!value) {
            error.textContent = t("home.tc.missing");
            error.hidden = false;
            number.input.focus();
            return;
          }
          error.hidden = true;
          try {
            tc = await api("PUT", "/api/me/telecommuter", { number: value });
          } catch (err) {
            error.textContent = t("home.tc.refused", { message: err.message });
            error.hidden = false;
            number.input.focus();
            return;
          }
          if (save.checked && !saved.some((s) => s.number === value)) {
            try {
              await api("POST", "/api/me/saved-numbers", { number: value, label: "" });
              saved = await api("GET", "/api/me/saved-numbers");
            } catch (err) {
              toast(t("home.tc.save_failed", { message: err.message }), "error");
            }
          }
          toast(t("home.tc.started", { number: value }), "success");
          renderWhere();
          renderSummary();
          focusWhere();
        },
      },
      h("datalist", { id: listId }, saved.map((s) => h("option", { value: s.number }, s.label || s.number))),
      chips,
      number.field,
      h("div", { class: "field field-check" }, save, h("label", { for: save.id }, t("home.tc.remember"))),
      error,
      h("button", { type: "submit", class: "btn btn-primary", "data-action": "tc-start" }, t("home.tc.start")),
    );
  }

  // T10 from the portal: log in on any phone by its account (whoever was
  // logged in there is logged out).
  function hotDeskForm() {
    const phone = field({ label: t("home.hotdesk.phone"), name: "hotdesk-phone", autocomplete: "off", hint: t("home.hotdesk.hint") });
    phone.input.setAttribute("data-role", "hotdesk-phone");
    return h(
      "form",
      {
        class: "inline-form hotdesk-form",
        onsubmit: async (event) => {
          event.preventDefault();
          const account = phone.input.value.trim();
          if (!account) {
            phone.input.focus();
            return;
          }
          await move("PUT", "/api/me/location", { phone: account }, t("home.hotdesk.done", { phone: account }));
        },
      },
      phone.field,
      h("button", { type: "submit", class: "btn", "data-action": "hotdesk-login" }, t("home.hotdesk.submit")),
    );
  }

  // After a move the control that made it is gone: keyboard and screen reader
  // users land on the new location instead of the top of the page.
  function focusWhere() {
    where.body.querySelector('[data-role="location"]')?.focus();
  }

  function renderWhere() {
    const location = tc.location;
    const kindClass = `where-${location.kind}`;
    const status = h(
      "div",
      { class: ["where-now", kindClass], "data-role": "location", "data-kind": location.kind, tabindex: "-1" },
      h("span", { class: ["where-icon", `icon-${location.kind}`], "aria-hidden": "true" }),
      h("div", {}, h("p", { class: "where-label" }, t("home.where.now")), h("p", { class: "where-value" }, locationText(location)), location.since ? h("p", { class: "muted small" }, t("home.where.since", { time: when(location.since) })) : null),
    );
    const parts = [status];
    if (location.kind === "telecommuter") {
      parts.push(h("div", { class: "button-row" }, h("button", { type: "button", class: "btn btn-danger", "data-action": "tc-stop", onclick: () => move("DELETE", "/api/me/telecommuter", undefined, t("home.tc.stopped")) }, t("home.tc.stop"))));
      parts.push(h("p", { class: "muted small" }, location.base_phone ? t("home.tc.stop_hint", { phone: location.base_phone }) : t("home.tc.stop_hint_none")));
    } else {
      const actions = [];
      if (location.kind === "logged-out" && location.base_phone) {
        actions.push(h("button", { type: "button", class: "btn", "data-action": "desk-login", onclick: () => move("PUT", "/api/me/location", { phone: location.base_phone }, t("home.where.back_at_desk")) }, t("home.where.use_desk", { phone: location.base_phone })));
      }
      if (location.kind === "phone") {
        actions.push(h("button", { type: "button", class: "btn btn-quiet", "data-action": "log-out", onclick: () => move("DELETE", "/api/me/location", undefined, t("home.where.logged_out_done")) }, t("home.where.log_out")));
      }
      if (actions.length) parts.push(h("div", { class: "button-row" }, actions));
      parts.push(h("h3", { class: "subhead" }, t("home.hotdesk.title")), hotDeskForm());
      parts.push(h("h3", { class: "subhead" }, t("home.tc.title")));
      if (tc.allowed) {
        parts.push(h("p", { class: "muted" }, t("home.tc.lead")), telecommuterForm());
      } else {
        // T1: a clear refusal, not a hidden button.
        parts.push(h("p", { class: "notice", "data-role": "tc-not-allowed" }, t("home.tc.not_allowed")));
      }
    }
    replace(where.body, parts);
  }

  function renderSummary() {
    const lines = handlingSummary(t, me, tc.location);
    replace(
      summary.body,
      h("ul", { class: "summary-list", "data-role": "handling-summary" }, lines.map((line) => h("li", {}, line))),
      h("p", {}, h("a", { href: "#/settings" }, t("home.summary.change"))),
    );
  }

  // ---- my presence ----
  let mine = null;
  async function loadPresence() {
    try {
      mine = await api("GET", "/api/me/presence");
      renderPresence();
    } catch (err) {
      replace(presence.body, loadFailed(t, err));
    }
  }

  function renderPresence() {
    const states = ["available", "away", "busy", "dnd", "offline"];
    const select = field({ label: t("presence.choose"), name: "presence-state", type: "select", value: mine.chosen, options: states.map((s) => [s, t(`presence.state.${s}`)]) });
    select.input.setAttribute("data-role", "presence-state");
    const note = field({ label: t("presence.note"), name: "presence-note", value: mine.note || "", maxlength: 200, hint: t("presence.note_hint") });
    note.input.setAttribute("data-role", "presence-note");
    replace(
      presence.body,
      h("p", { class: "presence-now", "data-role": "my-presence" }, t("presence.shown_as"), " ", presenceBadge(t, mine.state, mine.on_the_phone), mine.note ? h("span", { class: "presence-note" }, mine.note) : null),
      h(
        "form",
        {
          class: "presence-form",
          onsubmit: async (event) => {
            event.preventDefault();
            try {
              mine = await api("PUT", "/api/me/presence", { state: select.input.value, note: note.input.value.trim() || null });
              toast(t("presence.saved"), "success");
              renderPresence();
            } catch (err) {
              toast(err.message, "error");
            }
          },
        },
        select.field,
        note.field,
        h("button", { type: "submit", class: "btn btn-primary", "data-action": "presence-save" }, t("presence.save")),
      ),
    );
  }

  const offs = [
    events.on("location.changed", (message) => {
      if (!tc) return;
      tc = { ...tc, location: message.location, active: message.location.kind === "telecommuter", number: message.location.number };
      renderWhere();
      renderSummary();
    }),
    events.on("settings.changed", (message) => {
      if (!tc || !message.settings) return;
      me = message.settings;
      renderSummary();
    }),
    events.on("presence.changed", (message) => {
      if (message.presence && message.presence.username === ctx.me.username) loadPresence();
    }),
    // After a reconnection, read everything again (T8).
    events.on("hello", () => {
      load();
      loadPresence();
    }),
  ];
  load();
  loadPresence();
  return () => offs.forEach((off) => off());
}

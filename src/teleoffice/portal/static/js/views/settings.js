// My settings: call handling (call waiting, do not disturb, no-answer time,
// forwarding), saved telecommuter numbers, voicemail PIN and greeting, password.

import { h, replace, field, checkbox } from "../dom.js";
import { panel, loading, loadFailed } from "./common.js";

export function renderSettings(root, ctx) {
  const { api, t, events, toast } = ctx;
  const grid = h("div", { class: "grid grid-settings" });
  root.append(grid);
  const handling = panel(t("settings.calls.title"), { description: t("settings.calls.lead") });
  const saved = panel(t("settings.saved.title"), { description: t("settings.saved.lead") });
  const mailbox = panel(t("settings.voicemail.title"));
  const password = panel(t("settings.password.title"));
  grid.append(handling.panel, saved.panel, mailbox.panel, password.panel);
  handling.body.append(loading(t));
  saved.body.append(loading(t));
  mailbox.body.append(loading(t));

  // ---- call handling ----
  function renderHandling(me) {
    const waiting = checkbox({ label: t("settings.call_waiting"), name: "call_waiting", checked: me.call_waiting, hint: t("settings.call_waiting_hint") });
    const dnd = checkbox({ label: t("settings.dnd"), name: "dnd", checked: me.dnd, hint: t("settings.dnd_hint") });
    const timeout = field({ label: t("settings.no_answer"), name: "no_answer_timeout", type: "number", value: me.no_answer_timeout, min: 1, max: 600, inputmode: "numeric", hint: t("settings.no_answer_hint") });
    const fwd = {};
    for (const key of ["forward_always", "forward_busy", "forward_no_answer"]) {
      fwd[key] = field({ label: t(`settings.${key}`), name: key, type: "tel", inputmode: "tel", value: me[key] || "", hint: t(`settings.${key}_hint`) });
    }
    const error = h("p", { class: "notice notice-error", role: "alert", hidden: true });
    const form = h(
      "form",
      {
        class: "settings-form",
        "data-role": "settings-form",
        onsubmit: async (event) => {
          event.preventDefault();
          const body = {
            call_waiting: waiting.input.checked,
            dnd: dnd.input.checked,
            no_answer_timeout: Number(timeout.input.value),
          };
          for (const [key, f] of Object.entries(fwd)) {
            const value = f.input.value.replace(/[\s().-]/g, "");
            body[key] = value || null;
          }
          try {
            const updated = await api("PATCH", "/api/me/settings", body);
            Object.assign(ctx.me, updated);
            error.hidden = true;
            toast(t("settings.saved_ok"), "success");
          } catch (err) {
            error.textContent = t("settings.save_failed", { message: err.message });
            error.hidden = false;
          }
        },
      },
      h("fieldset", {}, h("legend", {}, t("settings.when")), waiting.field, dnd.field, timeout.field),
      h("fieldset", {}, h("legend", {}, t("settings.forwarding")), fwd.forward_always.field, fwd.forward_busy.field, fwd.forward_no_answer.field),
      error,
      h("button", { type: "submit", class: "btn btn-primary", "data-action": "settings-save" }, t("settings.save")),
    );
    replace(handling.body, form);
  }

  // ---- saved numbers ----
  async function loadSaved() {
    let list;
    try {
      list = await api("GET", "/api/me/saved-numbers");
    } catch (err) {
      replace(saved.body, loadFailed(t, err));
      return;
    }
    const number = field({ label: t("settings.saved.number"), name: "saved-number", type: "tel", inputmode: "tel" });
    const label = field({ label: t("settings.saved.label"), name: "saved-label", maxlength: 40 });
    replace(
      saved.body,
      list.length
        ? h(
            "ul",
            { class: "saved-list", "data-role": "saved-numbers" },
            list.map((s) =>
              h(
                "li",
                { class: "saved" },
                h("span", {}, h("span", { class: "saved-number" }, s.number), s.label ? h("span", { class: "muted" }, ` · ${s.label}`) : null),
                h(
                  "button",
                  {
                    type: "button",
                    class: "btn btn-quiet",
                    "aria-label": t("settings.saved.remove_label", { number: s.number }),
                    onclick: async () => {
                      try {
                        await api("DELETE", `/api/me/saved-numbers/${encodeURIComponent(s.number)}`);
                        loadSaved();
                      } catch (err) {
                        toast(err.message, "error");
                      }
                    },
                  },
                  t("settings.saved.remove"),
                ),
              ),
            ),
          )
        : h("p", { class: "muted" }, t("settings.saved.none")),
      h(
        "form",
        {
          class: "inline-form",
          onsubmit: async (event) => {
            event.preventDefault();
            try {
              await api("POST", "/api/me/saved-numbers", { number: number.input.value.replace(/[\s().-]/g, ""), label: label.input.value.trim() });
              toast(t("settings.saved.added"), "success");
              loadSaved();
            } catch (err) {
              toast(err.message, "error");
            }
          },
        },
        number.field,
        label.field,
        h("button", { type: "submit", class: "btn" }, t("settings.saved.add")),
      ),
    );
  }

  // ---- voicemail ----
  async function loadMailbox() {
    let box;
    try {
      box = await api("GET", "/api/me/voicemail");
    } catch (err) {
      replace(mailbox.body, err.status === 503 ? h("p", { class: "muted" }, t("settings.voicemail.unavailable")) : loadFailed(t, err));
      return;
    }
    const pin = field({ label: t("settings.voicemail.pin"), name: "pin", type: "password", inputmode: "numeric", autocomplete: "new-password", pattern: "[0-9]{4,12}", hint: t("settings.voicemail.pin_hint") });
    const parts = [
      h("p", {}, box.enabled ? t("settings.voicemail.on") : t("settings.voicemail.off")),
      h("p", { class: "muted" }, box.has_pin ? t("settings.voicemail.has_pin") : t("settings.voicemail.no_pin")),
      h(
        "form",
        {
          class: "inline-form",
          onsubmit: async (event) => {
            event.preventDefault();
            try {
              await api("PUT", "/api/me/voicemail/pin", { pin: pin.input.value });
              toast(t("settings.voicemail.pin_saved"), "success");
              loadMailbox();
            } catch (err) {
              toast(err.message, "error");
            }
          },
        },
        pin.field,
        h("button", { type: "submit", class: "btn" }, t("settings.voicemail.pin_save")),
      ),
      h("h3", { class: "subhead" }, t("settings.voicemail.greeting")),
      h("p", { class: "muted" }, box.has_greeting ? t("settings.voicemail.greeting_own") : t("settings.voicemail.greeting_system")),
    ];
    if (box.has_greeting) {
      parts.push(
        h("audio", { controls: true, preload: "none", src: "/api/me/voicemail/greeting", class: "greeting-player", "aria-label": t("settings.voicemail.greeting_player") }),
        h(
          "button",
          {
            type: "button",
            class: "btn btn-quiet",
            onclick: async () => {
              try {
                await api("DELETE", "/api/me/voicemail/greeting");
                toast(t("settings.voicemail.greeting_deleted"), "success");
                loadMailbox();
              } catch (err) {
                toast(err.message, "error");
              }
            },
          },
          t("settings.voicemail.greeting_delete"),
        ),
      );
    }
    replace(mailbox.body, parts);
  }

  // ---- password ----
  const current = field({ label: t("settings.password.current"), name: "current", type: "password", autocomplete: "current-password" });
  const fresh = field({ label: t("settings.password.new"), name: "new", type: "password", autocomplete: "new-password", hint: t("settings.password.hint") });
  password.body.append(
    h(
      "form",
      {
        class: "settings-form",
        onsubmit: async (event) => {
          event.preventDefault();
          try {
            const change = api("PUT", "/api/me/password", { current_password: current.input.value, new_password: fresh.input.value });
            events.sessionChanging(change);
            await change;
            current.input.value = "";
            fresh.input.value = "";
            toast(t("settings.password.changed"), "success");
          } catch (err) {
            toast(err.message, "error");
          }
        },
      },
      current.field,
      fresh.field,
      h("button", { type: "submit", class: "btn" }, t("settings.password.save")),
    ),
  );

  async function loadAll() {
    try {
      const me = await api("GET", "/api/me");
      Object.assign(ctx.me, me);
      renderHandling(me);
    } catch (err) {
      replace(handling.body, loadFailed(t, err));
    }
    loadSaved();
    loadMailbox();
  }
  const offs = [events.on("hello", loadAll)];
  loadAll();
  return () => offs.forEach((off) => off());
}

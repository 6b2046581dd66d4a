// Users: the list with search, creating one, and one user's page (profile,
// portal password, telecommuter permission and numbers, call handling,
// restrictions, voicemail, phone credentials, deletion).

import { h, replace } from "../dom.js";
import { ApiError } from "../api.js";
import { adminForm, field, checkbox, textarea, lines, digits } from "./forms.js";
import { panel, loading, loadFailed, toolbar, searchBox, linkButton, tag, dataTable, confirmButton, secretBox, facts } from "./ui.js";

const enc = encodeURIComponent;

function userTags(t, user) {
  return h(
    "span",
    { class: "tags" },
    user.is_admin ? tag(t("admin.users.tag.admin"), "info") : null,
    user.telecommuter_allowed ? tag(t("admin.users.tag.telecommuter"), "ok") : null,
    user.voicemail_enabled ? tag(t("admin.users.tag.voicemail"), "muted") : null,
    user.dnd ? tag(t("admin.users.tag.dnd"), "warn") : null,
    user.has_password ? null : tag(t("admin.users.tag.no_login"), "muted"),
  );
}

// ---- the list ------------------------------------------------------------------------

export function renderUsers(root, ctx) {
  const { api, t } = ctx;
  let users = [];
  let filter = "";
  const listHolder = h("div", { class: "admin-list", "aria-live": "polite" }, loading(t));
  const count = h("p", { class: "admin-count muted" });
  const search = searchBox({ label: t("admin.users.search"), placeholder: t("admin.users.search_placeholder"), role: "user-search", onInput: (text) => { filter = text; show(); } });
  root.append(
    toolbar(search.field, linkButton("#/admin/new-user", t("admin.users.new"), { primary: true, role: "new-user" })),
    count,
    listHolder,
  );

  function show() {
    const shown = users.filter((user) => !filter || [user.username, user.display_name, user.extension].some((value) => value.toLowerCase().includes(filter)));
    count.textContent = filter ? t("admin.users.count_filtered", { shown: shown.length, total: users.length }) : t("admin.users.count", { n: users.length });
    replace(
      listHolder,
      dataTable({
        role: "users",
        rowRole: (user) => `user-${user.username}`,
        caption: t("admin.users.title"),
        empty: filter ? t("admin.users.none_found") : t("admin.users.none"),
        rows: shown,
        columns: [
          {
            label: t("admin.users.col.name"),
            primary: true,
            cell: (user) => h("a", { href: `#/admin/users/${enc(user.username)}`, class: "row-link" }, h("span", { class: "row-title" }, user.display_name || user.username), h("span", { class: "row-sub muted" }, user.username)),
          },
          { label: t("admin.users.col.extension"), className: "cell-num", cell: (user) => user.extension },
          { label: t("admin.users.col.restriction"), cell: (user) => user.restriction },
          { label: t("admin.users.col.permissions"), cell: (user) => userTags(t, user) },
        ],
      }),
    );
  }

  api("GET", "/api/admin/users")
    .then((list) => {
      users = list;
      show();
    })
    .catch((err) => replace(listHolder, loadFailed(t, err)));
}

// ---- creating a user ------------------------------------------------------------------

function profileOptions(profiles) {
  return profiles.map((profile) => [profile.name, profile.description ? `${profile.name} — ${profile.description}` : profile.name]);
}

export function renderNewUser(root, ctx) {
  const { api, t } = ctx;
  const created = h("div", { class: "created", "aria-live": "polite" });
  const holder = h("div", {}, loading(t));
  root.append(h("p", { class: "admin-back" }, h("a", { href: "#/admin/users" }, t("admin.users.back"))), created, holder);

  api("GET", "/api/admin/restrictions")
    .then((profiles) => replace(holder, buildForm(profiles)))
    .catch((err) => replace(holder, loadFailed(t, err)));

  function buildForm(profiles) {
    const { form, errors, finish } = adminForm({
      role: "new-user",
      submitLabel: t("admin.users.create"),
      busyLabel: t("admin.users.creating"),
      onSubmit: async () => {
        const body = {
          username: username.input.value.trim(),
          extension: extension.input.value.trim(),
          is_admin: isAdmin.input.checked,
          telecommuter_allowed: telecommuter.input.checked,
          voicemail_enabled: voicemail.input.checked,
          restriction: restriction.input.value,
        };
        if (displayName.input.value.trim()) body.display_name = displayName.input.value.trim();
        if (password.input.value) body.password = password.input.value;
        const user = await api("POST", "/api/admin/users", body);
        form.reset();
        restriction.input.value = "default";
        replace(
          created,
          h(
            "div",
            { class: "notice notice-success", "data-role": "user-created" },
            h("p", {}, t("admin.users.created", { name: user.display_name || user.username, extension: user.extension })),
            user.sip_password ? secretBox(t("admin.users.sip_password_once", { account: user.extension }), user.sip_password, t("admin.users.sip_password_note")) : null,
            h("p", { class: "actions-inline" }, linkButton(`#/admin/users/${enc(user.username)}`, t("admin.users.open", { name: user.username }), { role: "open-created" }), h("span", { class: "muted" }, t("admin.users.or_another"))),
          ),
        );
        username.input.focus();
      },
    });
    const username = errors.register("username", field({ label: t("admin.users.f.username"), name: "username", required: true, autocomplete: "off", hint: t("admin.users.f.username_hint") }));
    const extension = errors.register("extension", field({ label: t("admin.users.f.extension"), name: "extension", inputmode: "numeric", required: true, hint: t("admin.users.f.extension_hint") }));
    const displayName = errors.register("display_name", field({ label: t("admin.users.f.display_name"), name: "display_name", autocomplete: "off" }), ["display name", "display_name"]);
    const password = errors.register("password", field({ label: t("admin.users.f.password"), name: "password", type: "password", autocomplete: "new-password", hint: t("admin.users.f.password_hint") }));
    const restriction = errors.register("restriction", field({ label: t("admin.users.f.restriction"), name: "restriction", type: "select", value: "default", options: profileOptions(profiles), hint: t("admin.users.f.restriction_hint") }), ["restriction", "profile"]);
    const isAdmin = checkbox({ label: t("admin.users.f.is_admin"), name: "is_admin", hint: t("admin.users.f.is_admin_hint") });
    const telecommuter = checkbox({ label: t("admin.users.f.telecommuter"), name: "telecommuter_allowed", hint: t("admin.users.f.telecommuter_hint") });
    const voicemail = checkbox({ label: t("admin.users.f.voicemail"), name: "voicemail_enabled" });
    form.append(
      h("div", { class: "form-grid" }, username.field, extension.field, displayName.field, password.field),
      h("fieldset", {}, h("legend", {}, t("admin.users.permissions")), isAdmin.field, telecommuter.field, voicemail.field, restriction.field),
    );
    finish();
    const { panel: box, body } = panel(t("admin.users.account"), { description: t("admin.users.new_lead") });
    body.append(form);
    setTimeout(() => username.input.focus(), 0);
    return box;
  }
}

// ---- one user ----------------------------------------------------------------------------

export function renderUser(root, ctx) {
  const { api, t, toast, navigate, params, me } = ctx;
  const name = params.name;
  const base = `/api/admin/users/${enc(name)}`;
  const head = h("div", { class: "user-head" });
  const grid = h("div", { class: "admin-grid" }, loading(t));
  root.append(h("p", { class: "admin-back" }, h("a", { href: "#/admin/users" }, t("admin.users.back"))), head, grid);

  let user = null;

  async function patch(body, successKey = "admin.saved") {
    user = await api("PATCH", base, body);
    showHead();
    // The shell shows the administrator's own name: keep it current.
    if (user.username === me.username) ctx.refreshMe().catch(() => {});
    toast(t(successKey), "success");
    return user;
  }

  function showHead() {
    replace(
      head,
      h("div", { class: "user-title" }, h("h2", { class: "user-name-big" }, user.display_name || user.username), h("p", { class: "muted" }, t("admin.users.head", { username: user.username, extension: user.extension }))),
      userTags(t, user),
    );
  }

  Promise.all([
    api("GET", base),
    api("GET", "/api/admin/restrictions"),
    api("GET", `${base}/voicemail`).catch((err) => (err instanceof ApiError && err.status === 503 ? null : Promise.reject(err))),
  ])
    .then(([loaded, profiles, mailbox]) => {
      user = loaded;
      showHead();
      replace(grid, profilePanel(), passwordPanel(), telecommuterPanel(), callsPanel(), restrictionPanel(profiles), voicemailPanel(mailbox), phonePanel(), dangerPanel());
    })
    .catch((err) => {
      if (err instanceof ApiError && err.status === 404) replace(grid, h("p", { class: "notice notice-error", role: "alert" }, t("admin.users.not_found", { name })));
      else replace(grid, loadFailed(t, err));
    });

  // -- profile: display name, administrator --
  function profilePanel() {
    const { form, errors, finish } = adminForm({
      role: "profile",
      onSubmit: async () => {
        await patch({ display_name: displayName.input.value.trim(), is_admin: isAdmin.input.checked });
      },
    });
    const displayName = errors.register("display_name", field({ label: t("admin.users.f.display_name"), name: "display_name", value: user.display_name }), ["display name", "display_name"]);
    const isAdmin = errors.register("is_admin", checkbox({ label: t("admin.users.f.is_admin"), name: "is_admin", checked: user.is_admin, hint: t("admin.users.f.is_admin_hint") }), ["administrator"]);
    if (user.username === me.username) {
      // The API refuses it too; say so before anyone tries.
      isAdmin.input.disabled = true;
      isAdmin.field.append(h("p", { class: "hint" }, t("admin.users.own_admin")));
    }
    form.append(displayName.field, h("div", { class: "field" }, h("span", { class: "label" }, t("admin.users.f.extension")), h("p", { class: "static-value" }, user.extension)), isAdmin.field);
    finish();
    const { panel: box, body } = panel(t("admin.users.profile"));
    body.append(form);
    return box;
  }

  // -- portal password --
  function passwordPanel() {
    const { panel: box, body } = panel(t("admin.users.password"), { description: user.has_password ? t("admin.users.password_set") : t("admin.users.password_none") });
    const result = h("div", { "aria-live": "polite" });
    if (user.username === me.username) {
      body.append(h("p", { class: "muted" }, t("admin.users.own_password")), linkButton("#/settings", t("admin.users.to_settings")));
      return box;
    }
    const { form, errors, finish } = adminForm({
      role: "password",
      submitLabel: t("admin.users.password_set_button"),
      onSubmit: async () => {
        await api("POST", `${base}/password`, { password: password.input.value });
        password.input.value = "";
        user.has_password = true;
        replace(result, h("p", { class: "notice notice-success" }, t("admin.users.password_changed")));
        showHead();
      },
      extraActions: h("button", {
        type: "button",
        class: "btn",
        "data-action": "password-generate",
        onclick: async () => {
          try {
            const answer = await api("POST", `${base}/password`, {});
            user.has_password = true;
            showHead();
            replace(result, secretBox(t("admin.users.password_generated"), answer.password, t("admin.users.password_generated_note")));
          } catch (err) {
            errors.show(err);
          }
        },
      }, t("admin.users.password_generate")),
    });
    const password = errors.register("password", field({ label: t("admin.users.f.new_password"), name: "new_password", type: "password", autocomplete: "new-password", hint: t("admin.users.f.password_hint") }));
    form.append(password.field);
    finish();
    body.append(form, result);
    return box;
  }

  // -- telecommuter mode: permission and allowed numbers (T1) --
  function telecommuterPanel() {
    const { form, errors, finish } = adminForm({
      role: "telecommuter",
      onSubmit: async () => {
        await patch({ telecommuter_allowed: allowed.input.checked, telecommuter_patterns: lines(patterns.input) });
        patterns.input.value = user.telecommuter_patterns.join("\n");
      },
    });
    const allowed = errors.register("telecommuter_allowed", checkbox({ label: t("admin.users.f.telecommuter"), name: "telecommuter_allowed", checked: user.telecommuter_allowed, hint: t("admin.users.f.telecommuter_hint") }));
    const patterns = errors.register("telecommuter_patterns", textarea({ label: t("admin.users.f.patterns"), name: "telecommuter_patterns", value: user.telecommuter_patterns.join("\n"), hint: t("admin.users.f.patterns_hint"), rows: 3 }), ["telecommuter_patterns", "pattern"]);
    form.append(allowed.field, patterns.field);
    finish();
    const end = h("div", { class: "panel-foot" });
    const { panel: box, body } = panel(t("admin.users.telecommuter"), { description: t("admin.users.telecommuter_lead") });
    body.append(form, end);
    // Whether the mode is on right now, from the live view (a server without
    // live telephony just shows nothing here).
    api("GET", "/api/admin/live")
      .then((live) => {
        const active = live.telecommuters.find((item) => item.username === user.username);
        if (!active) return;
        replace(
          end,
          h("p", { class: "notice" }, t("admin.users.telecommuter_active", { number: active.number })),
          confirmButton({
            label: t("admin.live.end_telecommuter"),
            question: t("admin.live.end_question", { name: user.username }),
            role: "end-telecommuter",
            onConfirm: async () => {
              try {
                await api("DELETE", `${base}/telecommuter`);
                toast(t("admin.live.ended", { name: user.username }), "success");
                replace(end);
              } catch (err) {
                toast(t("admin.form.failed", { message: err.message }), "error");
              }
            },
          }),
        );
      })
      .catch(() => {});
    return box;
  }

  // -- call handling --
  function callsPanel() {
    const { form, errors, finish } = adminForm({
      role: "calls",
      onSubmit: async () => {
        const body = { call_waiting: waiting.input.checked, dnd: dnd.input.checked, no_answer_timeout: Number(timeout.input.value) };
        for (const [key, f] of Object.entries(forwards)) body[key] = digits(f.input) || null;
        if (!Number.isInteger(body.no_answer_timeout)) body.no_answer_timeout = timeout.input.value;
        await patch(body);
      },
    });
    const waiting = errors.register("call_waiting", checkbox({ label: t("admin.users.f.call_waiting"), name: "call_waiting", checked: user.call_waiting }), ["call waiting"]);
    const dnd = errors.register("dnd", checkbox({ label: t("admin.users.f.dnd"), name: "dnd", checked: user.dnd }), ["dnd", "do not disturb"]);
    const timeout = errors.register("no_answer_timeout", field({ label: t("admin.users.f.no_answer"), name: "no_answer_timeout", type: "number", inputmode: "numeric", min: 1, max: 600, value: user.no_answer_timeout, hint: t("admin.users.f.no_answer_hint") }), ["no_answer_timeout", "no-answer"]);
    const forwards = {};
    for (const key of ["forward_always", "forward_busy", "forward_no_answer"]) {
      forwards[key] = errors.register(key, field({ label: t(`admin.users.f.${key}`), name: key, type: "tel", inputmode: "tel", value: user[key] || "" }));
    }
    form.append(
      h("div", { class: "form-grid" }, waiting.field, dnd.field),
      timeout.field,
      h("fieldset", {}, h("legend", {}, t("admin.users.forwarding")), h("p", { class: "hint" }, t("admin.users.forwarding_hint")), forwards.forward_always.field, forwards.forward_busy.field, forwards.forward_no_answer.field),
    );
    finish();
    const { panel: box, body } = panel(t("admin.users.calls"));
    body.append(form);
    return box;
  }

  // -- dialling restrictions (T11) --
  function restrictionPanel(profiles) {
    const { form, errors, finish } = adminForm({
      role: "restriction",
      onSubmit: async () => {
        await patch({ restriction: select.input.value });
        showProfile();
      },
    });
    const select = errors.register("restriction", field({ label: t("admin.users.f.restriction"), name: "restriction", type: "select", value: user.restriction, options: profileOptions(profiles) }), ["restriction", "profile"]);
    const summary = h("div", { class: "profile-summary" });
    function showProfile() {
      const profile = profiles.find((item) => item.name === select.input.value);
      replace(
        summary,
        profile
          ? facts([
              [t("admin.restrictions.f.allowed"), profile.allowed.join(", ") || t("admin.restrictions.anything")],
              [t("admin.restrictions.f.barred"), profile.barred.join(", ") || t("admin.restrictions.nothing")],
            ])
          : null,
        h("a", { href: `#/admin/restrictions/${enc(select.input.value)}` }, t("admin.users.open_profile")),
      );
    }
    select.input.addEventListener("change", showProfile);
    showProfile();
    form.append(select.field, summary);
    finish();
    const { panel: box, body } = panel(t("admin.users.restrictions"), { description: t("admin.users.restrictions_lead") });
    body.append(form);
    return box;
  }

  // -- voicemail: on/off, PIN, unsolicited message waiting --
  function voicemailPanel(mailbox) {
    const { panel: box, body } = panel(t("admin.users.voicemail"));
    if (mailbox === null) {
      body.append(h("p", { class: "muted" }, t("admin.users.voicemail_unavailable")));
      return box;
    }
    const status = h("div", {});
    function showStatus() {
      replace(
        status,
        facts([
          [t("admin.users.vm.messages"), t("admin.users.vm.counts", { new: mailbox.new, old: mailbox.old })],
          [t("admin.users.vm.pin"), mailbox.has_pin ? t("admin.users.vm.pin_set") : t("admin.users.vm.pin_none")],
          [t("admin.users.vm.greeting"), mailbox.has_greeting ? t("admin.users.vm.greeting_own") : t("admin.users.vm.greeting_system")],
        ]),
      );
    }
    const vmBase = `${base}/voicemail`;
    async function change(bodyOut) {
      mailbox = await api("PATCH", vmBase, bodyOut);
      user.voicemail_enabled = mailbox.enabled;
      showHead();
      showStatus();
    }
    const settings = adminForm({
      role: "voicemail",
      onSubmit: async () => {
        await change({ enabled: enabled.input.checked, unsolicited_mwi: mwi.input.checked });
        toast(t("admin.saved"), "success");
      },
    });
    const enabled = settings.errors.register("enabled", checkbox({ label: t("admin.users.vm.enabled"), name: "vm_enabled", checked: mailbox.enabled, hint: t("admin.users.vm.enabled_hint") }));
    const mwi = settings.errors.register("unsolicited_mwi", checkbox({ label: t("admin.users.vm.mwi"), name: "unsolicited_mwi", checked: mailbox.unsolicited_mwi, hint: t("admin.users.vm.mwi_hint") }));
    settings.form.append(enabled.field, mwi.field);
    settings.finish();

    const pinForm = adminForm({
      role: "pin",
      submitLabel: t("admin.users.vm.set_pin"),
      onSubmit: async () => {
        await change({ pin: pin.input.value.trim() });
        pin.input.value = "";
        toast(t("admin.users.vm.pin_saved"), "success");
      },
      extraActions: confirmButton({
        label: t("admin.users.vm.remove_pin"),
        question: t("admin.users.vm.remove_pin_question"),
        role: "remove-pin",
        danger: false,
        onConfirm: async () => {
          try {
            await change({ pin: null });
            toast(t("admin.users.vm.pin_removed"), "success");
          } catch (err) {
            pinForm.errors.show(err);
          }
        },
      }),
    });
    const pin = pinForm.errors.register("pin", field({ label: t("admin.users.vm.new_pin"), name: "pin", type: "password", inputmode: "numeric", autocomplete: "off", hint: t("admin.users.vm.pin_hint") }));
    pinForm.form.append(pin.field);
    pinForm.finish();
    showStatus();
    body.append(status, settings.form, h("hr", { class: "sep" }), pinForm.form);
    return box;
  }

  // -- the base phone: SIP password and hot-desk login code --
  function phonePanel() {
    const { panel: box, body } = panel(t("admin.users.phone"), { description: t("admin.users.phone_lead", { account: user.extension }) });
    const sip = adminForm({
      role: "sip-password",
      submitLabel: t("admin.users.sip_set"),
      onSubmit: async () => {
        await patch({ sip_password: sipPassword.input.value }, "admin.users.sip_saved");
        sipPassword.input.value = "";
      },
    });
    const sipPassword = sip.errors.register("sip_password", field({ label: t("admin.users.f.sip_password"), name: "sip_password", type: "password", autocomplete: "new-password", hint: t("admin.users.f.sip_password_hint") }), ["sip_password", "sip password"]);
    sip.form.append(sipPassword.field);
    sip.finish();

    const codeState = h("p", { class: "muted" });
    const showCode = () => { codeState.textContent = user.has_login_code ? t("admin.users.code_set") : t("admin.users.code_none"); };
    showCode();
    const code = adminForm({
      role: "login-code",
      submitLabel: t("admin.users.code_set_button"),
      onSubmit: async () => {
        await patch({ login_code: loginCode.input.value.trim() });
        loginCode.input.value = "";
        showCode();
      },
      extraActions: h("button", {
        type: "button",
        class: "btn btn-quiet",
        "data-action": "remove-login-code",
        onclick: async () => {
          try {
            await patch({ login_code: null });
            showCode();
          } catch (err) {
            code.errors.show(err);
          }
        },
      }, t("admin.users.code_remove")),
    });
    const loginCode = code.errors.register("login_code", field({ label: t("admin.users.f.login_code"), name: "login_code", type: "password", inputmode: "numeric", autocomplete: "off", hint: t("admin.users.f.login_code_hint") }), ["login_code", "login code"]);
    code.form.append(codeState, loginCode.field);
    code.finish();
    body.append(sip.form, h("hr", { class: "sep" }), code.form);
    return box;
  }

  // -- deleting --
  function dangerPanel() {
    const { panel: box, body } = panel(t("admin.users.delete_title"), { className: "panel-danger" });
    if (user.username === me.username) {
      body.append(h("p", { class: "muted" }, t("admin.users.own_delete")));
      return box;
    }
    body.append(
      h("p", {}, t("admin.users.delete_lead")),
      confirmButton({
        label: t("admin.users.delete"),
        question: t("admin.users.delete_question", { name: user.username }),
        role: "delete-user",
        onConfirm: async () => {
          try {
            await api("DELETE", base);
            toast(t("admin.users.deleted", { name: user.username }), "success");
            navigate("#/admin/users");
          } catch (err) {
            toast(t("admin.form.failed", { message: err.message }), "error");
          }
        },
      }),
    );
    return box;
  }
}

// Restriction profiles (rule T11): who may dial what. A profile lists allowed
// and barred number patterns and the emergency numbers always allowed from a
// phone; a user has one profile ("default" unless assigned another).

import { h, replace } from "../dom.js";
import { ApiError } from "../api.js";
import { adminForm, field, checkbox, textarea, lines } from "./forms.js";
import { panel, loading, loadFailed, toolbar, linkButton, dataTable, confirmButton } from "./ui.js";

const enc = encodeURIComponent;

function patternList(t, patterns, emptyKey = "admin.restrictions.nothing") {
  if (!patterns.length) return h("span", { class: "muted" }, t(emptyKey));
  return h("span", { class: "patterns" }, patterns.map((pattern) => h("code", { class: "pattern" }, pattern)));
}

export function renderRestrictions(root, ctx) {
  const { api, t } = ctx;
  const listHolder = h("div", { class: "admin-list" }, loading(t));
  root.append(toolbar(h("p", { class: "muted toolbar-text" }, t("admin.restrictions.lead")), linkButton("#/admin/new-restriction", t("admin.restrictions.new"), { primary: true, role: "new-restriction" })), listHolder);
  api("GET", "/api/admin/restrictions")
    .then((profiles) =>
      replace(
        listHolder,
        dataTable({
          role: "restrictions",
          rowRole: (profile) => `restriction-${profile.name}`,
          caption: t("admin.restrictions.title"),
          empty: t("admin.restrictions.none"),
          rows: profiles,
          columns: [
            { label: t("admin.restrictions.col.name"), primary: true, cell: (profile) => h("a", { href: `#/admin/restrictions/${enc(profile.name)}`, class: "row-link" }, h("span", { class: "row-title" }, profile.name), profile.description ? h("span", { class: "row-sub muted" }, profile.description) : null) },
            { label: t("admin.restrictions.f.allowed"), cell: (profile) => patternList(t, profile.allowed, "admin.restrictions.anything") },
            { label: t("admin.restrictions.f.barred"), cell: (profile) => patternList(t, profile.barred) },
            { label: t("admin.restrictions.col.users"), className: "cell-num", cell: (profile) => (profile.name === "default" ? t("admin.restrictions.everyone_else") : String(profile.users.length)) },
          ],
        }),
      ),
    )
    .catch((err) => replace(listHolder, loadFailed(t, err)));
}

function profileForm(ctx, profile, onSaved) {
  const { api, t } = ctx;
  const editing = profile !== null;
  const { form, errors, finish } = adminForm({
    role: "restriction",
    submitLabel: editing ? t("admin.save") : t("admin.restrictions.create"),
    onSubmit: async () => {
      const body = {
        description: description.input.value.trim(),
        allowed: lines(allowed.input),
        barred: lines(barred.input),
        emergency: lines(emergency.input).flatMap((line) => line.split(/[\s,]+/)).filter(Boolean),
      };
      const saved = editing ? await api("PATCH", `/api/admin/restrictions/${enc(profile.name)}`, body) : await api("POST", "/api/admin/restrictions", { name: name.input.value.trim(), ...body });
      onSaved(saved);
    },
  });
  const name = errors.register("name", field({ label: t("admin.restrictions.f.name"), name: "name", value: editing ? profile.name : "", hint: editing ? null : t("admin.restrictions.f.name_hint") }), ["name", "profile"]);
  if (editing) name.input.readOnly = true;
  const description = errors.register("description", field({ label: t("admin.restrictions.f.description"), name: "description", value: editing ? profile.description : "" }));
  const allowed = errors.register("allowed", textarea({ label: t("admin.restrictions.f.allowed"), name: "allowed", value: editing ? profile.allowed.join("\n") : "internal", hint: t("admin.restrictions.f.allowed_hint"), rows: 5 }));
  const barred = errors.register("barred", textarea({ label: t("admin.restrictions.f.barred"), name: "barred", value: editing ? profile.barred.join("\n") : "", hint: t("admin.restrictions.f.barred_hint"), rows: 5 }));
  const emergency = errors.register("emergency", textarea({ label: t("admin.restrictions.f.emergency"), name: "emergency", value: editing ? profile.emergency.join("\n") : "112\n911\n999", hint: t("admin.restrictions.f.emergency_hint"), rows: 3 }));
  form.append(h("div", { class: "form-grid" }, name.field, description.field), h("div", { class: "form-grid" }, allowed.field, barred.field), emergency.field, h("details", { class: "help" }, h("summary", {}, t("admin.restrictions.syntax")), h("ul", {}, ["x", "z", "n", "class", "dot", "bang", "internal", "label"].map((key) => h("li", {}, t(`admin.restrictions.syntax.${key}`))))));
  finish();
  return { form, focus: () => (editing ? description.input : name.input).focus() };
}

export function renderNewRestriction(root, ctx) {
  const { t, toast, navigate } = ctx;
  const { form, focus } = profileForm(ctx, null, (profile) => {
    toast(t("admin.restrictions.created", { name: profile.name }), "success");
    navigate(`#/admin/restrictions/${enc(profile.name)}`);
  });
  const { panel: box, body } = panel(t("admin.restrictions.new_title"));
  body.append(form);
  root.append(h("p", { class: "admin-back" }, h("a", { href: "#/admin/restrictions" }, t("admin.restrictions.back"))), box);
  setTimeout(focus, 0);
}

export function renderRestriction(root, ctx) {
  const { api, t, toast, navigate, params } = ctx;
  const holder = h("div", { class: "admin-grid" }, loading(t));
  root.append(h("p", { class: "admin-back" }, h("a", { href: "#/admin/restrictions" }, t("admin.restrictions.back"))), holder);
  api("GET", `/api/admin/restrictions/${enc(params.name)}`)
    .then(show)
    .catch((err) => {
      if (err instanceof ApiError && err.status === 404) replace(holder, h("p", { class: "notice notice-error", role: "alert" }, t("admin.restrictions.not_found", { name: params.name })));
      else replace(holder, loadFailed(t, err));
    });

  function show(profile) {
    const edit = panel(t("admin.restrictions.rules"));
    edit.body.append(
      profileForm(ctx, profile, (saved) => {
        toast(t("admin.saved"), "success");
        show(saved);
      }).form,
    );
    replace(holder, edit.panel, checkPanel(profile), usersPanel(profile), dangerPanel(profile));
  }

  function checkPanel(profile) {
    const result = h("div", { class: "check-result", "aria-live": "polite", "data-role": "check-result" });
    const { form, errors, finish } = adminForm({
      role: "check",
      submitLabel: t("admin.restrictions.check_button"),
      onSubmit: async () => {
        const verdict = await api("POST", `/api/admin/restrictions/${enc(profile.name)}/check`, { number: number.input.value.replace(/[\s().\/-]/g, ""), internal: internal.input.checked, from_phone: fromPhone.input.checked });
        replace(result, h("p", { class: ["notice", verdict.allowed ? "notice-success" : "notice-error"], "data-allowed": String(verdict.allowed) }, h("strong", {}, verdict.allowed ? t("admin.restrictions.allowed") : t("admin.restrictions.barred")), " ", verdict.reason));
      },
    });
    const number = errors.register("number", field({ label: t("admin.restrictions.f.number"), name: "number", type: "tel", inputmode: "tel", hint: t("admin.restrictions.f.number_hint") }));
    const internal = checkbox({ label: t("admin.restrictions.f.internal"), name: "internal" });
    const fromPhone = checkbox({ label: t("admin.restrictions.f.from_phone"), name: "from_phone", checked: true });
    form.append(number.field, h("div", { class: "form-grid" }, internal.field, fromPhone.field));
    finish();
    const box = panel(t("admin.restrictions.check"), { description: t("admin.restrictions.check_lead") });
    box.body.append(form, result);
    return box.panel;
  }

  function usersPanel(profile) {
    const box = panel(t("admin.restrictions.users"));
    if (profile.name === "default") box.body.append(h("p", { class: "muted" }, t("admin.restrictions.default_users")));
    box.body.append(
      profile.users.length
        ? h("ul", { class: "chips" }, profile.users.map((user) => h("li", {}, h("a", { href: `#/admin/users/${enc(user)}`, class: "chip" }, user))))
        : h("p", { class: "muted" }, t("admin.restrictions.no_users")),
    );
    return box.panel;
  }

  function dangerPanel(profile) {
    const box = panel(t("admin.restrictions.delete_title"), { className: "panel-danger" });
    const blocked = profile.name === "default" ? t("admin.restrictions.delete_default") : profile.users.length ? t("admin.restrictions.delete_assigned") : null;
    box.body.append(
      blocked ? h("p", { class: "muted" }, blocked) : h("p", {}, t("admin.restrictions.delete_lead")),
      confirmButton({
        label: t("admin.restrictions.delete"),
        question: t("admin.restrictions.delete_question", { name: profile.name }),
        role: "delete-restriction",
        disabled: Boolean(blocked),
        onConfirm: async () => {
          try {
            await api("DELETE", `/api/admin/restrictions/${enc(profile.name)}`);
            toast(t("admin.restrictions.deleted", { name: profile.name }), "success");
            navigate("#/admin/restrictions");
          } catch (err) {
            toast(t("admin.form.failed", { message: err.message }), "error");
          }
        },
      }),
    );
    return box.panel;
  }
}



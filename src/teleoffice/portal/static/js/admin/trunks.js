// Trunks: the providers that carry calls to and from outside numbers
// (what `teleoffice trunk add/set/list/del` does).

import { h, replace } from "../dom.js";
import { ApiError } from "../api.js";
import { adminForm, field, checkbox } from "./forms.js";
import { panel, loading, loadFailed, toolbar, linkButton, tag, dataTable, confirmButton, facts } from "./ui.js";

const enc = encodeURIComponent;
const STATE_KINDS = { registered: "ok", registering: "info", failed: "bad", unregistered: "muted" };

function hostport(trunk) {
  const host = trunk.host.includes(":") ? `[${trunk.host}]` : trunk.host;
  return `${host}:${trunk.port}`;
}

function registration(t, trunk) {
  if (!trunk.register) return h("span", { class: "muted" }, t("admin.trunks.no_register"));
  const state = trunk.registration || "unregistered";
  return tag(t(`admin.trunks.state.${state}`), STATE_KINDS[state] || "muted", { "data-state": state });
}

export function renderTrunks(root, ctx) {
  const { api, t } = ctx;
  const listHolder = h("div", { class: "admin-list" }, loading(t));
  root.append(toolbar(h("p", { class: "muted toolbar-text" }, t("admin.trunks.lead")), linkButton("#/admin/new-trunk", t("admin.trunks.new"), { primary: true, role: "new-trunk" })), listHolder);
  api("GET", "/api/admin/trunks")
    .then((trunks) =>
      replace(
        listHolder,
        dataTable({
          role: "trunks",
          rowRole: (trunk) => `trunk-${trunk.name}`,
          caption: t("admin.trunks.title"),
          empty: t("admin.trunks.none"),
          rows: trunks,
          columns: [
            { label: t("admin.trunks.col.name"), primary: true, cell: (trunk) => h("a", { href: `#/admin/trunks/${enc(trunk.name)}`, class: "row-link" }, h("span", { class: "row-title" }, trunk.name), h("span", { class: "row-sub muted mono" }, `${trunk.transport.toUpperCase()} ${hostport(trunk)}`)) },
            { label: t("admin.trunks.col.prefix"), className: "cell-num", cell: (trunk) => (trunk.prefix ? h("span", { class: "mono" }, trunk.prefix) : h("span", { class: "muted" }, t("admin.trunks.inbound_only"))) },
            { label: t("admin.trunks.col.credentials"), cell: (trunk) => (trunk.has_credentials ? `${trunk.username}@${trunk.realm}` : trunk.username || "") },
            { label: t("admin.trunks.col.outside_number"), cell: (trunk) => trunk.outside_number || "" },
            { label: t("admin.trunks.col.registration"), cell: (trunk) => registration(t, trunk) },
          ],
        }),
      ),
    )
    .catch((err) => replace(listHolder, loadFailed(t, err)));
}

/** The trunk form, for a new trunk (trunk === null) or an existing one. */
function trunkForm(ctx, trunk, onSaved) {
  const { api, t } = ctx;
  const editing = trunk !== null;
  const value = (key, fallback = "") => (editing && trunk[key] !== null && trunk[key] !== undefined ? trunk[key] : fallback);
  const { form, errors, finish } = adminForm({
    role: "trunk",
    submitLabel: editing ? t("admin.save") : t("admin.trunks.create"),
    onSubmit: async () => {
      const body = {
        host: host.input.value.trim(),
        port: Number(port.input.value),
        transport: transport.input.value,
        use_pai: pai.input.checked,
        register: register.input.checked,
        register_expires: Number(expires.input.value),
      };
      if (!Number.isInteger(body.port)) body.port = port.input.value;
      if (!Number.isInteger(body.register_expires)) body.register_expires = expires.input.value;
      const text = (input) => input.value.trim();
      // Empty means "none": on a new trunk it is left out, on an existing one
      // it removes what was there (null), and an unchanged field is not sent.
      for (const [key, input] of [["prefix", prefix.input], ["outside_number", outside.input], ["username", username.input]]) {
        const typed = text(input);
        if (!editing) {
          if (typed) body[key] = typed;
        } else if (typed !== (trunk[key] || "")) {
          body[key] = typed || null;
        }
      }
      if (text(password.input)) body.password = password.input.value;
      if (text(realm.input) && (!editing || text(realm.input) !== trunk.realm)) body.realm = text(realm.input);
      let saved;
      if (editing) {
        for (const key of ["host", "port", "transport", "use_pai", "register", "register_expires"]) {
          if (body[key] === trunk[key]) delete body[key];
        }
        saved = await api("PATCH", `/api/admin/trunks/${enc(trunk.name)}`, body);
      } else {
        body.name = text(name.input);
        saved = await api("POST", "/api/admin/trunks", body);
      }
      password.input.value = "";
      onSaved(saved);
    },
  });
  const name = errors.register("name", field({ label: t("admin.trunks.f.name"), name: "name", value: value("name"), hint: editing ? null : t("admin.trunks.f.name_hint") }), ["name", "trunk"]);
  if (editing) name.input.readOnly = true;
  const host = errors.register("host", field({ label: t("admin.trunks.f.host"), name: "host", value: value("host"), hint: t("admin.trunks.f.host_hint") }));
  const port = errors.register("port", field({ label: t("admin.trunks.f.port"), name: "port", type: "number", inputmode: "numeric", min: 1, max: 65535, value: value("port", 5060) }));
  const transport = errors.register("transport", field({ label: t("admin.trunks.f.transport"), name: "transport", type: "select", value: value("transport", "udp"), options: [["udp", "UDP"], ["tcp", "TCP"]] }));
  const prefix = errors.register("prefix", field({ label: t("admin.trunks.f.prefix"), name: "prefix", inputmode: "numeric", value: value("prefix"), hint: t("admin.trunks.f.prefix_hint") }));
  const outside = errors.register("outside_number", field({ label: t("admin.trunks.f.outside_number"), name: "outside_number", type: "tel", inputmode: "tel", value: value("outside_number"), hint: t("admin.trunks.f.outside_number_hint") }), ["outside_number", "outside number"]);
  const pai = errors.register("use_pai", checkbox({ label: t("admin.trunks.f.pai"), name: "use_pai", checked: value("use_pai", false), hint: t("admin.trunks.f.pai_hint") }), ["p-asserted-identity"]);
  const username = errors.register("username", field({ label: t("admin.trunks.f.username"), name: "username", value: value("username"), hint: t("admin.trunks.f.username_hint") }), ["username", "user name"]);
  const password = errors.register("password", field({ label: t("admin.trunks.f.password"), name: "password", type: "password", autocomplete: "new-password", placeholder: editing && trunk.has_credentials ? t("admin.trunks.f.password_unchanged") : "", hint: t("admin.trunks.f.password_hint") }));
  const realm = errors.register("realm", field({ label: t("admin.trunks.f.realm"), name: "realm", value: value("realm"), hint: t("admin.trunks.f.realm_hint") }));
  const register = errors.register("register", checkbox({ label: t("admin.trunks.f.register"), name: "register", checked: value("register", false), hint: t("admin.trunks.f.register_hint") }), ["register", "registering"]);
  const expires = errors.register("register_expires", field({ label: t("admin.trunks.f.register_expires"), name: "register_expires", type: "number", inputmode: "numeric", min: 60, max: 86400, value: value("register_expires", 3600) }), ["register_expires", "registration time"]);
  form.append(
    h("fieldset", {}, h("legend", {}, t("admin.trunks.where")), h("div", { class: "form-grid" }, name.field, host.field, port.field, transport.field)),
    h("fieldset", {}, h("legend", {}, t("admin.trunks.calls_out")), h("div", { class: "form-grid" }, prefix.field, outside.field), pai.field),
    h("fieldset", {}, h("legend", {}, t("admin.trunks.credentials")), h("div", { class: "form-grid" }, username.field, password.field, realm.field, expires.field), register.field),
  );
  finish();
  return { form, focus: () => (editing ? host.input : name.input).focus() };
}

export function renderNewTrunk(root, ctx) {
  const { t, toast, navigate } = ctx;
  const { form, focus } = trunkForm(ctx, null, (trunk) => {
    toast(t("admin.trunks.created", { name: trunk.name }), "success");
    navigate(`#/admin/trunks/${enc(trunk.name)}`);
  });
  const { panel: box, body } = panel(t("admin.trunks.new_title"), { description: t("admin.trunks.new_lead") });
  body.append(form);
  root.append(h("p", { class: "admin-back" }, h("a", { href: "#/admin/trunks" }, t("admin.trunks.back"))), box);
  setTimeout(focus, 0);
}

export function renderTrunk(root, ctx) {
  const { api, t, toast, navigate, params } = ctx;
  const holder = h("div", { class: "admin-grid" }, loading(t));
  root.append(h("p", { class: "admin-back" }, h("a", { href: "#/admin/trunks" }, t("admin.trunks.back"))), holder);
  api("GET", `/api/admin/trunks/${enc(params.name)}`)
    .then(show)
    .catch((err) => {
      if (err instanceof ApiError && err.status === 404) replace(holder, h("p", { class: "notice notice-error", role: "alert" }, t("admin.trunks.not_found", { name: params.name })));
      else replace(holder, loadFailed(t, err));
    });

  function show(trunk) {
    const status = panel(t("admin.trunks.status"));
    status.body.append(
      facts([
        [t("admin.trunks.col.registration"), registration(t, trunk)],
        [t("admin.trunks.dialling"), trunk.prefix ? t("admin.trunks.dialling_text", { prefix: trunk.prefix }) : t("admin.trunks.inbound_only")],
        [t("admin.trunks.col.credentials"), trunk.has_credentials ? t("admin.trunks.credentials_text", { username: trunk.username, realm: trunk.realm }) : t("admin.trunks.no_credentials")],
      ]),
    );
    const edit = panel(t("admin.trunks.settings"));
    const { form } = trunkForm(ctx, trunk, (saved) => {
      toast(t("admin.saved"), "success");
      show(saved);
    });
    edit.body.append(form);
    const danger = panel(t("admin.trunks.delete_title"), { className: "panel-danger" });
    danger.body.append(
      h("p", {}, t("admin.trunks.delete_lead")),
      confirmButton({
        label: t("admin.trunks.delete"),
        question: t("admin.trunks.delete_question", { name: trunk.name }),
        role: "delete-trunk",
        onConfirm: async () => {
          try {
            await api("DELETE", `/api/admin/trunks/${enc(trunk.name)}`);
            toast(t("admin.trunks.deleted", { name: trunk.name }), "success");
            navigate("#/admin/trunks");
          } catch (err) {
            toast(t("admin.form.failed", { message: err.message }), "error");
          }
        },
      }),
    );
    replace(holder, status.panel, edit.panel, danger.panel);
  }
}

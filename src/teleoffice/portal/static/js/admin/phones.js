// Phones and their registrations: every SIP account, who it belongs to, whom
// it rings for now, and where it is registered from.

import { h, replace } from "../dom.js";
import { loading, loadFailed, toolbar, searchBox, tag, dataTable, poll, span } from "./ui.js";
import { checkbox } from "./forms.js";

// Registrations change without any event (a binding simply expires), so the
// page asks again every few seconds while it is open (see portal/admin_live.py).
const REFRESH_SECONDS = 5;

/** The registrations of one phone, as a compact list. */
export function registrationList(t, registrations) {
  return h(
    "ul",
    { class: "reg-list" },
    registrations.map((reg) =>
      h(
        "li",
        { class: "reg" },
        h("span", { class: "reg-source mono" }, `${reg.transport.toUpperCase()} ${reg.source}`),
        h("span", { class: "reg-agent" }, reg.user_agent || t("admin.phones.no_agent")),
        h("span", { class: "reg-expiry muted", title: reg.contact }, t("admin.phones.expires_in", { span: span(reg.expires_in) })),
      ),
    ),
  );
}

function occupancy(t, phone) {
  if (!phone.logged_in) return tag(t("admin.phones.nobody"), "muted");
  if (phone.logged_in === phone.owner) return h("span", {}, phone.logged_in);
  return h("span", {}, phone.logged_in, " ", tag(t("admin.phones.hot_desk"), "info"));
}

export function renderPhones(root, ctx) {
  const { api, t } = ctx;
  let phones = null;
  let filter = "";
  let shownSignature = "";
  const listHolder = h("div", { class: "admin-list" }, loading(t));
  const count = h("p", { class: "admin-count muted", "aria-live": "polite" });
  const search = searchBox({ label: t("admin.phones.search"), placeholder: t("admin.phones.search_placeholder"), role: "phone-search", onInput: (text) => { filter = text; show(); } });
  const onlyRegistered = checkbox({ label: t("admin.phones.only_registered"), name: "only_registered" });
  onlyRegistered.input.addEventListener("change", show);
  root.append(toolbar(search.field, onlyRegistered.field), count, listHolder);

  function show() {
    if (phones === null) return;
    const shown = phones.filter(
      (phone) =>
        (!onlyRegistered.input.checked || phone.registrations.length) &&
        (!filter || [phone.account, phone.owner || "", phone.logged_in || ""].some((value) => value.toLowerCase().includes(filter))),
    );
    const registered = phones.filter((phone) => phone.registrations.length).length;
    count.textContent = t("admin.phones.count", { total: phones.length, registered });
    // A refresh that changed nothing but the countdowns updates those in place,
    // so keyboard focus and the reader's place in the table stay where they are.
    const signature = JSON.stringify([filter, onlyRegistered.input.checked, shown.map((phone) => [phone.account, phone.logged_in, phone.registrations.map((reg) => [reg.uri, reg.source, reg.user_agent])])]);
    if (signature === shownSignature) {
      const expiries = listHolder.querySelectorAll(".reg-expiry");
      const regs = shown.flatMap((phone) => phone.registrations);
      expiries.forEach((el, i) => {
        if (regs[i]) el.textContent = t("admin.phones.expires_in", { span: span(regs[i].expires_in) });
      });
      return;
    }
    shownSignature = signature;
    replace(
      listHolder,
      dataTable({
        role: "phones",
        rowRole: (phone) => `phone-${phone.account}`,
        caption: t("admin.phones.title"),
        empty: t("admin.phones.none"),
        rows: shown,
        columns: [
          { label: t("admin.phones.col.account"), primary: true, cell: (phone) => h("span", { class: "row-title mono" }, phone.account) },
          { label: t("admin.phones.col.owner"), cell: (phone) => (phone.owner ? h("a", { href: `#/admin/users/${encodeURIComponent(phone.owner)}` }, phone.owner) : "") },
          { label: t("admin.phones.col.rings_for"), cell: (phone) => occupancy(t, phone) },
          {
            label: t("admin.phones.col.status"),
            cell: (phone) =>
              phone.registrations.length
                ? tag(t("admin.phones.registered", { n: phone.registrations.length }), "ok", { "data-state": "registered" })
                : tag(t("admin.phones.unregistered"), "muted", { "data-state": "unregistered" }),
          },
          { label: t("admin.phones.col.registrations"), className: "cell-wide", cell: (phone) => (phone.registrations.length ? registrationList(t, phone.registrations) : "") },
        ],
      }),
    );
  }

  return poll(async () => {
    try {
      phones = await api("GET", "/api/admin/phones");
      show();
    } catch (err) {
      if (phones === null) replace(listHolder, loadFailed(t, err));
      throw err;
    }
  }, () => REFRESH_SECONDS);
}

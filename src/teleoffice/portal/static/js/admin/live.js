// The live view: registered phones, calls in progress (everybody's),
// telecommuters, trunk registrations.
//
// It polls GET /api/admin/live every `refresh_seconds` (the server says how
// often) while the page is open and visible; why polling rather than events is
// explained in portal/admin_live.py. Durations tick every second in between,
// counted from the server's own clock (`at`), so a wrong clock on the admin's
// computer does not skew them.

import { h, replace } from "../dom.js";
import { clock, when } from "../format.js";
import { panel, loading, loadFailed, tag, dataTable, confirmButton, poll } from "./ui.js";
import { registrationList } from "./phones.js";

const STATE_KINDS = { calling: "info", ringing: "warn", waiting: "warn", connected: "ok" };
const TRUNK_KINDS = { registered: "ok", registering: "info", failed: "bad", unregistered: "muted" };

function party(p) {
  const name = p.name && p.name !== p.number ? p.name : null;
  return h("span", { class: "party" }, h("span", { class: "row-title" }, name || p.number), name ? h("span", { class: "row-sub muted mono" }, p.number) : null);
}

export function renderLive(root, ctx) {
  const { api, t, toast } = ctx;
  let refreshSeconds = 3;
  let skew = 0; // server time - local time, in ms
  let loaded = false;
  const signatures = {};

  const tiles = h("div", { class: "tiles", "data-role": "live-tiles" });
  const calls = panel(t("admin.live.calls"), { className: "panel-live" });
  const telecommuters = panel(t("admin.live.telecommuters"), { className: "panel-live" });
  const phones = panel(t("admin.live.phones"), { className: "panel-live" });
  const trunks = panel(t("admin.live.trunks"), { className: "panel-live" });
  const updated = h("p", { class: "live-updated muted", "data-role": "live-updated" });
  const body = h("div", { class: "live" }, loading(t));
  root.append(body);

  const serverNow = () => Date.now() + skew;
  const elapsed = (iso) => Math.max(0, (serverNow() - Date.parse(iso)) / 1000);

  // Re-render a section only when what it shows changed (focus stays put).
  function section(key, target, data, render) {
    const signature = JSON.stringify(data);
    if (signatures[key] === signature) return;
    signatures[key] = signature;
    replace(target, render());
  }

  function tile(label, value, role, sub) {
    return h("div", { class: "tile", "data-role": role }, h("span", { class: "tile-value" }, String(value)), h("span", { class: "tile-label" }, label), sub ? h("span", { class: "tile-sub muted" }, sub) : null);
  }

  function show(live) {
    if (!loaded) {
      loaded = true;
      replace(body, tiles, h("div", { class: "live-grid" }, calls.panel, telecommuters.panel, phones.panel, trunks.panel), updated);
    }
    const registeredTrunks = live.trunks.filter((trunk) => trunk.state === "registered").length;
    section("tiles", tiles, [live.phones.length, live.calls.length, live.telecommuters.length, live.trunks], () => [
      tile(t("admin.live.tile.phones"), live.phones.length, "tile-phones"),
      tile(t("admin.live.tile.calls"), live.calls.length, "tile-calls", live.calls.filter((call) => call.state === "connected").length ? t("admin.live.tile.connected", { n: live.calls.filter((call) => call.state === "connected").length }) : null),
      tile(t("admin.live.tile.telecommuters"), live.telecommuters.length, "tile-telecommuters"),
      live.trunks.length ? tile(t("admin.live.tile.trunks"), `${registeredTrunks}/${live.trunks.length}`, "tile-trunks", t("admin.live.tile.trunks_sub")) : null,
    ]);

    section("calls", calls.body, live.calls.map((call) => [call.id, call.state, call.held, call.answered_at, call.to]), () =>
      dataTable({
        role: "live-calls",
        rowRole: (call) => `call-${call.id}`,
        caption: t("admin.live.calls"),
        empty: t("admin.live.no_calls"),
        rows: live.calls,
        columns: [
          { label: t("admin.live.col.from"), primary: true, cell: (call) => party(call.from) },
          { label: t("admin.live.col.to"), cell: (call) => party(call.to) },
          {
            label: t("admin.live.col.state"),
            cell: (call) => h("span", { class: "tags" }, tag(t(`admin.live.state.${call.state}`), STATE_KINDS[call.state] || "muted", { "data-state": call.state }), call.held ? tag(t("admin.live.held"), "muted") : null),
          },
          { label: t("admin.live.col.kind"), cell: (call) => (call.trunk ? t("admin.live.kind_trunk", { kind: t(`admin.live.kind.${call.kind}`), trunk: call.trunk }) : t(`admin.live.kind.${call.kind}`)) },
          {
            label: t("admin.live.col.duration"),
            className: "cell-num",
            // Talk time once answered, else how long it has been ringing.
            cell: (call) => h("span", { class: "mono", "data-since": call.answered_at || call.started_at }, clock(elapsed(call.answered_at || call.started_at))),
          },
        ],
      }),
    );

    section("telecommuters", telecommuters.body, live.telecommuters, () =>
      dataTable({
        role: "live-telecommuters",
        rowRole: (item) => `telecommuter-${item.username}`,
        caption: t("admin.live.telecommuters"),
        empty: t("admin.live.no_telecommuters"),
        rows: live.telecommuters,
        columns: [
          { label: t("admin.live.col.user"), primary: true, cell: (item) => h("a", { href: `#/admin/users/${encodeURIComponent(item.username)}`, class: "row-link" }, h("span", { class: "row-title" }, item.display_name || item.username), h("span", { class: "row-sub muted" }, t("admin.live.extension", { extension: item.extension }))) },
          { label: t("admin.live.col.number"), cell: (item) => h("span", { class: "mono" }, item.number) },
          { label: t("admin.live.col.since"), cell: (item) => when(item.since) },
          { label: t("admin.live.col.portal"), cell: (item) => (item.online ? tag(t("admin.live.online"), "ok") : tag(t("admin.live.offline"), "muted")) },
          {
            label: t("admin.live.col.actions"),
            cell: (item) =>
              confirmButton({
                label: t("admin.live.end_telecommuter"),
                question: t("admin.live.end_question", { name: item.username }),
                role: `end-telecommuter-${item.username}`,
                onConfirm: async () => {
                  try {
                    await api("DELETE", `/api/admin/users/${encodeURIComponent(item.username)}/telecommuter`);
                    toast(t("admin.live.ended", { name: item.username }), "success");
                    refresh();
                  } catch (err) {
                    toast(t("admin.form.failed", { message: err.message }), "error");
                  }
                },
              }),
          },
        ],
      }),
    );

    section("phones", phones.body, live.phones.map((phone) => [phone.account, phone.logged_in, phone.registrations.map((reg) => [reg.uri, reg.source, reg.user_agent])]), () =>
      dataTable({
        role: "live-phones",
        rowRole: (phone) => `phone-${phone.account}`,
        caption: t("admin.live.phones"),
        empty: t("admin.live.no_phones"),
        rows: live.phones,
        columns: [
          { label: t("admin.phones.col.account"), primary: true, cell: (phone) => h("span", { class: "row-title mono" }, phone.account) },
          { label: t("admin.phones.col.rings_for"), cell: (phone) => phone.logged_in || h("span", { class: "muted" }, t("admin.phones.nobody")) },
          { label: t("admin.phones.col.registrations"), className: "cell-wide", cell: (phone) => registrationList(t, phone.registrations) },
        ],
      }),
    );

    trunks.panel.hidden = live.trunks.length === 0;
    section("trunks", trunks.body, live.trunks, () =>
      h(
        "ul",
        { class: "trunk-states", "data-role": "live-trunks" },
        live.trunks.map((trunk) => h("li", {}, h("a", { href: `#/admin/trunks/${encodeURIComponent(trunk.name)}` }, trunk.name), tag(t(`admin.trunks.state.${trunk.state}`), TRUNK_KINDS[trunk.state] || "muted"))),
      ),
    );

    updated.textContent = t("admin.live.updated", { time: new Date(serverNow()).toLocaleTimeString(), seconds: refreshSeconds });
  }

  async function refresh() {
    try {
      const live = await api("GET", "/api/admin/live");
      skew = Date.parse(live.at) - Date.now();
      refreshSeconds = live.refresh_seconds || refreshSeconds;
      show(live);
    } catch (err) {
      if (!loaded) replace(body, loadFailed(t, err));
      else updated.textContent = t("admin.live.stale", { message: err.message });
      throw err;
    }
  }

  const stop = poll(refresh, () => refreshSeconds);
  const ticker = setInterval(() => {
    for (const el of root.querySelectorAll("[data-since]")) el.textContent = clock(elapsed(el.dataset.since));
  }, 1000);
  return () => {
    stop();
    clearInterval(ticker);
  };
}

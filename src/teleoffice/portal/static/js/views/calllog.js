// My call log: every call I made or received, newest first, with a call-back
// button.

import { h, replace } from "../dom.js";
import { loading, loadFailed, callButton } from "./common.js";
import { partyName, partyNumber, when, fullWhen, clock } from "../format.js";

function outcomeText(t, entry) {
  if (!entry.outcome) return t("log.outcome.live");
  const key = `log.outcome.${entry.outcome}`;
  const text = t(key);
  return text === key ? entry.outcome : text;
}

export function renderCallLog(root, ctx) {
  const { api, t, events } = ctx;
  const holder = h("div", { class: "panel" }, loading(t));
  root.append(holder);

  async function load() {
    let entries;
    try {
      entries = await api("GET", "/api/me/call-log?limit=200");
    } catch (err) {
      replace(holder, loadFailed(t, err));
      return;
    }
    if (!entries.length) {
      replace(holder, h("p", { class: "empty muted" }, t("log.empty")));
      return;
    }
    const rows = entries.map((entry) => {
      const outgoing = entry.side === "caller";
      const other = outgoing ? entry.to : entry.from;
      const missed = !outgoing && entry.outcome && entry.outcome !== "answered";
      return h(
        "tr",
        { class: missed ? "row-missed" : null, "data-role": "log-row", "data-call-id": entry.id },
        h("td", { class: "cell-dir" }, h("span", { class: ["dir", outgoing ? "dir-out" : "dir-in", missed && "dir-missed"] }, t(outgoing ? "log.outgoing" : missed ? "log.missed" : "log.incoming"))),
        h("td", {}, h("span", { class: "cell-name" }, partyName(other)), partyNumber(other) ? h("span", { class: "cell-sub muted" }, other.number) : null),
        h("td", { class: "cell-when" }, h("time", { datetime: entry.started_at, title: fullWhen(entry.started_at) }, when(entry.started_at))),
        h("td", { class: "cell-outcome" }, outcomeText(t, entry)),
        h("td", { class: "cell-duration" }, entry.duration === null || entry.duration === undefined ? "" : clock(entry.duration)),
        h("td", { class: "cell-action" }, other.number ? callButton(ctx, other.number, t("dial.call_name", { name: partyName(other) })) : null),
      );
    });
    replace(
      holder,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "table table-log" },
          h("caption", { class: "visually-hidden" }, t("log.caption")),
          h("thead", {}, h("tr", {}, ["log.col.direction", "log.col.party", "log.col.when", "log.col.outcome", "log.col.duration", "log.col.action"].map((key) => h("th", { scope: "col" }, t(key))))),
          h("tbody", {}, rows),
        ),
      ),
    );
  }

  let timer = null;
  const reload = () => {
    clearTimeout(timer);
    timer = setTimeout(load, 500);
  };
  const offs = [events.on("call.ended", reload), events.on("hello", load)];
  load();
  return () => {
    clearTimeout(timer);
    offs.forEach((off) => off());
  };
}

// Dialling: a number field with a dial pad, and a search over the directory and
// my call log; any result is one click (or Enter) from being called.

import { h, replace, uid } from "../dom.js";
import { panel, dial, callButton, presenceBadge } from "./common.js";
import { partyName, when } from "../format.js";

const KEYS = [
  ["1", ""], ["2", "ABC"], ["3", "DEF"],
  ["4", "GHI"], ["5", "JKL"], ["6", "MNO"],
  ["7", "PQRS"], ["8", "TUV"], ["9", "WXYZ"],
  ["*", ""], ["0", "+"], ["#", ""],
];
const MAX_RESULTS = 8;

export function renderDial(root, ctx) {
  const { api, t, events } = ctx;
  const inputId = uid("dial");
  const input = h("input", {
    id: inputId,
    class: "dial-input",
    type: "text",
    inputmode: "tel",
    autocomplete: "off",
    spellcheck: "false",
    "data-role": "dial-input",
    "aria-describedby": `${inputId}-hint`,
    placeholder: t("dial.placeholder"),
  });
  const results = h("ul", { class: "results", "data-role": "search-results", "aria-live": "polite" });
  const callIt = h("button", { type: "submit", class: "btn btn-success btn-large", "data-action": "dial-submit" }, h("span", { class: "icon icon-phone", "aria-hidden": "true" }), t("dial.call"));

  const pad = h(
    "div",
    { class: "dialpad", role: "group", "aria-label": t("dial.pad") },
    KEYS.map(([key, letters]) =>
      h(
        "button",
        {
          type: "button",
          class: "dialpad-key",
          "data-key": key,
          "aria-label": t("dial.key", { key }),
          onclick: () => {
            input.value += key;
            input.focus();
            search();
          },
        },
        h("span", { class: "dialpad-digit" }, key),
        h("span", { class: "dialpad-letters", "aria-hidden": "true" }, letters),
      ),
    ),
  );
  const erase = h("button", { type: "button", class: "btn btn-quiet", "aria-label": t("dial.erase_label"), onclick: () => { input.value = input.value.slice(0, -1); input.focus(); search(); } }, t("dial.erase"));

  const form = h(
    "form",
    {
      class: "dial-form",
      onsubmit: async (event) => {
        event.preventDefault();
        const value = input.value.trim();
        if (!value) {
          ctx.toast(t("dial.empty"), "error");
          input.focus();
          return;
        }
        // A name typed into the box dials the best match.
        const digits = /^[+0-9*#\s().-]+$/.test(value) ? value : (matches[0] && matches[0].number) || value;
        dial(ctx, digits);
      },
    },
    h("label", { for: inputId, class: "dial-label" }, t("dial.label")),
    h("div", { class: "dial-row" }, input, erase),
    h("p", { id: `${inputId}-hint`, class: "hint" }, t("dial.hint")),
    pad,
    callIt,
  );

  const left = panel(t("dial.number_title"), { className: "panel-dial" });
  left.body.append(form);
  const right = panel(t("dial.search_title"), { className: "panel-search", description: t("dial.search_lead") });
  right.body.append(results);
  root.append(h("div", { class: "grid grid-dial" }, left.panel, right.panel));

  let directory = [];
  let log = [];
  let matches = [];

  function search() {
    const query = input.value.trim().toLowerCase();
    const digits = query.replace(/[^0-9*#+]/g, "");
    const seen = new Set();
    matches = [];
    const add = (entry) => {
      if (!entry.number || seen.has(entry.number)) return;
      seen.add(entry.number);
      matches.push(entry);
    };
    const hit = (name, number) => !query || (name && name.toLowerCase().includes(query)) || (digits && number && number.includes(digits));
    for (const person of directory) {
      if (person.username === ctx.me.username) continue;
      if (hit(person.display_name, person.extension) || (query && person.username.toLowerCase().includes(query))) {
        add({ number: person.extension, name: person.display_name, source: "directory", person });
      }
    }
    for (const entry of log) {
      const other = entry.side === "caller" ? entry.to : entry.from;
      if (hit(other.name, other.number)) add({ number: other.number, name: other.name, source: "log", at: entry.started_at });
    }
    showResults(matches.slice(0, MAX_RESULTS), query);
  }

  function showResults(list, query) {
    if (!list.length) {
      replace(results, h("li", { class: "muted empty" }, query ? t("dial.no_match") : t("dial.nothing_yet")));
      return;
    }
    replace(
      results,
      list.map((m) =>
        h(
          "li",
          { class: "result", "data-role": "search-result", "data-number": m.number },
          h(
            "div",
            { class: "result-text" },
            h("span", { class: "result-name" }, m.name || m.number),
            h("span", { class: "result-meta muted" }, m.source === "directory" ? t("dial.from_directory", { number: m.number }) : t("dial.from_log", { number: m.number, time: when(m.at) })),
          ),
          m.person ? presenceBadge(t, m.person.state, m.person.on_the_phone) : null,
          callButton(ctx, m.number, t("dial.call_name", { name: partyName(m) })),
        ),
      ),
    );
  }

  input.addEventListener("input", search);
  async function load() {
    const [dirResult, logResult] = await Promise.allSettled([api("GET", "/api/presence"), api("GET", "/api/me/call-log?limit=100")]);
    directory = dirResult.status === "fulfilled" ? dirResult.value : [];
    log = logResult.status === "fulfilled" ? logResult.value : [];
    search();
  }
  const offs = [events.on("hello", load)];
  load();
  // A number handed over from another page ("#/dial?number=...") is prefilled.
  const wanted = new URLSearchParams(location.hash.split("?")[1] || "").get("number");
  if (wanted) input.value = wanted;
  input.focus();
  return () => offs.forEach((off) => off());
}

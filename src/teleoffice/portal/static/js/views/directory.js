// The directory: everyone's extension and presence, live, with a filter and
// click-to-dial.

import { h, replace, uid } from "../dom.js";
import { loading, loadFailed, callButton, presenceBadge } from "./common.js";

export function renderDirectory(root, ctx) {
  const { api, t, events } = ctx;
  const filterId = uid("filter");
  const filter = h("input", { id: filterId, type: "search", autocomplete: "off", "data-role": "directory-filter", placeholder: t("directory.filter_placeholder") });
  const list = h("ul", { class: "people", "data-role": "directory" }, loading(t));
  root.append(h("div", { class: "panel" }, h("div", { class: "field field-inline" }, h("label", { for: filterId }, t("directory.filter")), filter), list));
  let people = [];

  function render() {
    const query = filter.value.trim().toLowerCase();
    const shown = people.filter((p) => !query || p.display_name.toLowerCase().includes(query) || p.extension.includes(query) || p.username.toLowerCase().includes(query));
    if (!shown.length) {
      replace(list, h("li", { class: "empty muted" }, t("directory.none")));
      return;
    }
    replace(list, shown.map(personRow));
  }

  function personRow(p) {
    return h(
      "li",
      { class: "person", "data-role": "person", "data-username": p.username },
      h("span", { class: "avatar", "aria-hidden": "true" }, (p.display_name || p.username).slice(0, 1).toUpperCase()),
      h(
        "div",
        { class: "person-text" },
        h("span", { class: "person-name" }, p.display_name || p.username, p.username === ctx.me.username ? h("span", { class: "muted" }, ` ${t("directory.you")}`) : null),
        h("span", { class: "person-ext muted" }, t("directory.extension", { extension: p.extension })),
        p.note ? h("span", { class: "person-note", "data-role": "person-note" }, p.note) : null,
      ),
      h("span", { "data-role": "person-presence" }, presenceBadge(t, p.state, p.on_the_phone)),
      p.username === ctx.me.username ? h("span") : callButton(ctx, p.extension, t("dial.call_name", { name: p.display_name || p.username })),
    );
  }

  async function load() {
    try {
      people = await api("GET", "/api/presence");
      render();
    } catch (err) {
      replace(list, loadFailed(t, err));
    }
  }

  filter.addEventListener("input", render);
  const offs = [
    events.on("presence.changed", (message) => {
      const p = message.presence;
      const person = p && people.find((x) => x.username === p.username);
      if (!person) return;
      Object.assign(person, { state: p.state, note: p.note, on_the_phone: p.on_the_phone, since: p.since });
      // Only that person's row changes, so keyboard focus elsewhere stays put.
      const row = list.querySelector(`[data-username="${CSS.escape(p.username)}"]`);
      if (row) row.replaceWith(personRow(person));
    }),
    events.on("hello", load),
  ];
  load();
  return () => offs.forEach((off) => off());
}

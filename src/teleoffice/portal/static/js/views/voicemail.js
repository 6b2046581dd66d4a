// My voicemail: every message with a player, download and delete. Playing a
// message marks it heard (as listening by phone does).

import { h, replace } from "../dom.js";
import { loading, loadFailed, callButton } from "./common.js";
import { partyName, partyNumber, when, fullWhen, clock } from "../format.js";

export function renderVoicemail(root, ctx) {
  const { api, t, tn, events, toast } = ctx;
  const holder = h("div", { class: "voicemail" }, loading(t));
  root.append(holder);

  async function markHeard(message) {
    if (message.heard) return;
    message.heard = true;
    try {
      await api("PATCH", `/api/me/voicemail/${message.id}`, { heard: true });
    } catch (err) {
      message.heard = false;
      toast(err.message, "error");
    }
  }

  function messageItem(message) {
    const src = `/api/me/voicemail/${message.id}/audio`;
    const audio = h("audio", { controls: true, preload: "metadata", src, "data-role": "voicemail-audio", "aria-label": t("voicemail.player", { name: partyName(message.from) }) });
    audio.addEventListener("play", () => markHeard(message));
    const confirm = h("button", { type: "button", class: "btn btn-danger", hidden: true, "data-action": "vm-delete-confirm" }, t("voicemail.delete_confirm"));
    const cancel = h("button", { type: "button", class: "btn btn-quiet", hidden: true, onclick: () => { confirm.hidden = true; cancel.hidden = true; remove.hidden = false; remove.focus(); } }, t("common.cancel"));
    const remove = h("button", { type: "button", class: "btn btn-quiet", "data-action": "vm-delete", onclick: () => { remove.hidden = true; confirm.hidden = false; cancel.hidden = false; confirm.focus(); } }, t("voicemail.delete"));
    confirm.addEventListener("click", async () => {
      try {
        await api("DELETE", `/api/me/voicemail/${message.id}`);
        toast(t("voicemail.deleted"), "success");
        load();
      } catch (err) {
        toast(err.message, "error");
      }
    });
    const number = partyNumber(message.from);
    return h(
      "li",
      { class: ["vm", !message.heard && "vm-new"], "data-role": "voicemail-message", "data-id": String(message.id) },
      h(
        "div",
        { class: "vm-head" },
        h("div", {}, h("span", { class: "vm-from" }, partyName(message.from)), number ? h("span", { class: "muted vm-number" }, ` ${number}`) : null, !message.heard ? h("span", { class: "tag tag-new" }, t("voicemail.new")) : null),
        h("div", { class: "vm-meta muted" }, h("time", { datetime: message.created_at, title: fullWhen(message.created_at) }, when(message.created_at)), " · ", clock(message.duration)),
      ),
      audio,
      h(
        "div",
        { class: "button-row" },
        message.from && message.from.number ? callButton(ctx, message.from.number, t("voicemail.call_back", { name: partyName(message.from) })) : null,
        h("a", { class: "btn btn-quiet", href: src, download: `voicemail-${message.id}.wav`, "data-action": "vm-download" }, t("voicemail.download")),
        remove,
        confirm,
        cancel,
      ),
    );
  }

  async function load() {
    let box;
    try {
      box = await api("GET", "/api/me/voicemail");
    } catch (err) {
      replace(holder, loadFailed(t, err));
      return;
    }
    const parts = [];
    parts.push(h("p", { class: "vm-counts", "data-role": "voicemail-counts" }, tn("voicemail.count_new", box.new), " · ", tn("voicemail.count_old", box.old)));
    if (!box.enabled) parts.push(h("p", { class: "notice" }, t("voicemail.disabled")));
    if (!box.messages.length) parts.push(h("p", { class: "empty muted" }, t("voicemail.empty")));
    else parts.push(h("ul", { class: "vm-list" }, box.messages.map(messageItem)));
    replace(holder, parts);
  }

  const offs = [events.on("voicemail.new", load), events.on("hello", load)];
  load();
  return () => offs.forEach((off) => off());
}

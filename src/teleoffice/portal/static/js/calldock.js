// The call dock: the user's live calls on every page. An incoming call pops up
// here with the caller and the number they called; a call being placed shows
// its stages; a connected call has a timer and hang up, hold/resume and
// transfer; a waiting call (call waiting) has answer and reject. Stage changes
// are announced to screen readers through a polite live region.

import { h, clear, uid } from "./dom.js";
import { calls, otherParty } from "./calls.js";
import { partyName, partyNumber, clock, since } from "./format.js";

const OUTGOING_STEPS = ["calling_you", "connecting", "ringing", "connected"];

export function renderCallDock(dock, ctx) {
  const { api, t, toast } = ctx;
  const list = h("div", { class: "dock-calls" });
  const announcer = h("p", { class: "visually-hidden", "aria-live": "assertive", "aria-atomic": "true", "data-role": "call-announcer" });
  dock.append(announcer, list);
  const transferOpen = new Set();

  function announce(entry) {
    const party = partyName(otherParty(entry.call));
    const key = entry.stage === "failed" || entry.stage === "missed" ? `calls.why.${entry.reason}` : `calls.announce.${entry.stage}`;
    announcer.textContent = t(key, { party });
  }

  async function act(entry, action, body) {
    const id = encodeURIComponent(entry.call.id);
    try {
      if (action === "hangup") await api("DELETE", `/api/calls/${id}`);
      else if (action === "transfer") await api("POST", `/api/calls/${id}/transfer`, body);
      else await api("POST", `/api/calls/${id}/${action}`);
      if (action === "transfer") {
        transferOpen.delete(entry.call.id);
        toast(t("calls.transferred", { number: body.to }), "success");
      }
    } catch (err) {
      toast(t("calls.action_failed", { message: err.message }), "error");
    }
  }

  function button(entry, action, label, kind = "") {
    return h("button", { type: "button", class: ["btn", kind], "data-action": action, onclick: () => act(entry, action) }, label);
  }

  function steps(entry) {
    const current = entry.stage === "failed" ? -1 : OUTGOING_STEPS.indexOf(entry.stage === "held" ? "connected" : entry.stage);
    return h(
      "ol",
      { class: "steps", "aria-label": t("calls.steps") },
      OUTGOING_STEPS.map((step, index) =>
        h("li", { class: ["step", index < current && "step-done", index === current && "step-current"], "aria-current": index === current ? "step" : null, "data-step": step }, t(`calls.stage.${step}`)),
      ),
    );
  }

  function transferForm(entry) {
    const id = uid("transfer");
    const input = h("input", { id, type: "tel", inputmode: "tel", autocomplete: "off", required: true, pattern: "\\+?[0-9*#]{1,32}", "data-role": "transfer-number" });
    return h(
      "form",
      {
        class: "transfer-form",
        onsubmit: (event) => {
          event.preventDefault();
          const to = input.value.trim();
          if (to) act(entry, "transfer", { to });
        },
      },
      h("label", { for: id }, t("calls.transfer_to")),
      h("div", { class: "inline" }, input, h("button", { type: "submit", class: "btn btn-primary", "data-action": "transfer-go" }, t("calls.transfer_go")), h("button", { type: "button", class: "btn btn-quiet", onclick: () => { transferOpen.delete(entry.call.id); render(); } }, t("common.cancel"))),
    );
  }

  function card(entry) {
    const { call, stage } = entry;
    const party = otherParty(call);
    const incoming = call.direction === "incoming";
    const placed = entry.seen.placed || OUTGOING_STEPS.includes(stage) && !incoming && (entry.seen.stages.has("calling_you") || entry.seen.stages.has("connecting"));
    const headingKey = {
      incoming: "calls.title.incoming",
      waiting: "calls.title.waiting",
      connected: "calls.title.connected",
      held: "calls.title.held",
      ended: "calls.title.ended",
      failed: "calls.title.failed",
      missed: "calls.title.missed",
      voicemail: "calls.title.voicemail",
    }[stage] || "calls.title.outgoing";
    const number = partyNumber(party);
    const body = [
      h("p", { class: "call-kicker" }, t(headingKey)),
      h("p", { class: "call-party" }, h("span", { class: "call-name", "data-role": "party-name" }, partyName(party)), number ? h("span", { class: "call-number", "data-role": "party-number" }, number) : null),
    ];
    if (incoming && stage !== "ended" && stage !== "missed") {
      // T5: the number they called (a DID, or the extension).
      const called = call.dialled || (call.to && call.to.number);
      if (called) body.push(h("p", { class: "call-detail", "data-role": "called-number" }, t("calls.called", { number: called })));
    }
    if (!incoming && placed && stage !== "ended" && stage !== "failed") body.push(steps(entry));
    else if (!incoming && stage === "calling") body.push(h("p", { class: "call-detail" }, t("calls.stage.calling")));
    if (stage === "connected" || stage === "held") {
      body.push(h("p", { class: "call-timer", "data-role": "timer", "data-since": call.answered_at || "" }, clock(since(call.answered_at))));
    }
    if (stage === "failed" || stage === "missed") body.push(h("p", { class: "call-reason", "data-role": "reason" }, t(`calls.why.${entry.reason}`)));
    const controls = [];
    if (stage === "waiting") {
      controls.push(button(entry, "answer", t("calls.answer"), "btn-success"), button(entry, "reject", t("calls.reject"), "btn-danger"));
    } else if (stage === "connected" || stage === "held") {
      controls.push(
        stage === "held" ? button(entry, "resume", t("calls.resume")) : button(entry, "hold", t("calls.hold")),
        h("button", { type: "button", class: "btn", "data-action": "transfer", "aria-expanded": String(transferOpen.has(call.id)), onclick: () => { transferOpen.add(call.id); render(); list.querySelector(`[data-call-id="${CSS.escape(call.id)}"] [data-role="transfer-number"]`)?.focus(); } }, t("calls.transfer")),
        button(entry, "hangup", t("calls.hang_up"), "btn-danger"),
      );
    } else if (stage === "voicemail") {
      // Nothing to do: the mailbox has the caller; the message shows up when it is left.
    } else if (stage === "incoming") {
      controls.push(button(entry, "hangup", t("calls.decline"), "btn-danger"));
    } else if (stage === "ended" || stage === "failed" || stage === "missed") {
      controls.push(h("button", { type: "button", class: "btn btn-quiet", "data-action": "dismiss", onclick: () => calls.remove(call.id) }, t("calls.dismiss")));
      if (entry.reason === "busy" || entry.reason === "failed") {
        // A failed destination still plays its tone on the user's line: let them end it.
        controls.unshift(button(entry, "hangup", t("calls.hang_up"), "btn-danger"));
      }
    } else {
      controls.push(button(entry, "hangup", t("calls.cancel"), "btn-danger"));
    }
    const headingId = uid("call");
    return h(
      "section",
      {
        class: ["call-card", `call-${stage}`, incoming && "call-in"],
        "data-call-id": call.id,
        "data-stage": stage,
        "aria-labelledby": headingId,
      },
      h("h2", { id: headingId, class: "visually-hidden" }, `${t(headingKey)}: ${partyName(party)}`),
      body,
      h("div", { class: "call-controls" }, controls),
      transferOpen.has(call.id) && (stage === "connected" || stage === "held") ? transferForm(entry) : null,
    );
  }

  function render() {
    // Keep keyboard focus on the same control across re-renders.
    const active = document.activeElement;
    const focusCall = active && active.closest ? active.closest("[data-call-id]")?.dataset.callId : null;
    const focusAction = active && active.dataset ? active.dataset.action || active.dataset.role : null;
    const typed = active && active.dataset && active.dataset.role === "transfer-number" ? active.value : null;
    clear(list);
    const entries = calls.list();
    dock.classList.toggle("dock-empty", entries.length === 0);
    for (const entry of entries) list.append(card(entry));
    if (focusCall && focusAction) {
      const cardEl = list.querySelector(`[data-call-id="${CSS.escape(focusCall)}"]`);
      const again = cardEl && (cardEl.querySelector(`[data-action="${focusAction}"]`) || cardEl.querySelector(`[data-role="${focusAction}"]`) || cardEl.querySelector("button"));
      if (again) {
        if (typed !== null && "value" in again) again.value = typed;
        again.focus();
      }
    }
  }

  const stopCalls = calls.subscribe((entry, previousStage) => {
    if (entry && entry.stage !== previousStage) announce(entry);
    render();
  });
  const ticker = setInterval(() => {
    for (const el of list.querySelectorAll('[data-role="timer"]')) el.textContent = clock(since(el.dataset.since));
  }, 1000);
  render();
  return () => {
    stopCalls();
    clearInterval(ticker);
    clear(dock);
  };
}

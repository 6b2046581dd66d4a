// The user's live calls, kept from the `hello` state and the call.* events,
// with the stage each call is at in words the user knows:
//
//   placed from the portal: calling_you -> connecting -> ringing -> connected
//   incoming:               incoming (or waiting, call waiting)  -> connected,
//                           or voicemail (the caller is leaving a message)
//   any call:               held, ended, failed (with a reason); missed (incoming)
//
// Ended calls stay listed for a little while so the page can say how they ended.

import { events } from "./events.js";

const ENDED_VISIBLE_MS = 10000;
const DONE = new Set(["ended", "failed", "missed"]);

/** Whether the PBX placed this call for the user (click-to-dial, telecommuter callback). */
function placedForUser(call) {
  const route = call.route || "";
  return route.startsWith("callback to") || route.startsWith("click-to-dial");
}

/**
 * The stage of a call, from what the API says about it. `seen` is what the
 * store remembers of the call's earlier stages (to tell a callback that was
 * never answered from a destination that failed).
 */
export function stageOf(call, seen = {}) {
  if (call.stage) return call.stage; // a server that names it itself
  const incoming = call.direction === "incoming";
  switch (call.state) {
    case "calling":
      if (incoming) return "incoming";
      // The route grows once the user's own phone answered and the
      // destination is being dialled ("callback to 80611, trunk pstn").
      if ((call.route || "").includes(", ")) return "connecting";
      // A call placed from the portal is announced before its route is known
      // (the user's own line is rung first); calls from a phone have a route.
      if (!call.route || placedForUser(call) || seen.placed) return "calling_you";
      return "calling";
    case "ringing":
      return incoming ? "incoming" : "ringing";
    case "waiting":
      return "waiting";
    case "connected":
      // Answered by the user's mailbox, not by the user.
      if (incoming && (call.route || "").includes("voicemail")) return "voicemail";
      return call.held ? "held" : "connected";
    case "ended":
      if (call.outcome === "answered" || call.outcome === "transferred") return "ended";
      return "failed";
    default:
      return call.state || "calling";
  }
}

/** Why an ended call failed, as an i18n key under "calls.why.". */
export function failureReason(call, seen = {}) {
  if (call.outcome === "cancelled") return "cancelled";
  if (seen.stages && seen.stages.has("calling_you") && !seen.stages.has("connecting") && !seen.stages.has("ringing")) {
    // The user's own phone never took the call: nothing was dialled onward.
    return "callback_unanswered";
  }
  const known = ["busy", "no-answer", "not-found", "barred", "rejected", "unavailable"];
  if (known.includes(call.outcome)) return call.outcome;
  if (call.status === 486 || call.status === 600) return "busy";
  if (call.status === 404 || call.status === 484) return "not-found";
  if (call.status === 408 || call.status === 480) return "no-answer";
  if (call.status === 403) return "barred";
  return "failed";
}

/** The other party of a call, as the user sees it. */
export function otherParty(call) {
  return call.direction === "incoming" ? call.from : call.to;
}

class CallStore {
  constructor() {
    this.calls = new Map(); // id -> { call, stage, seen, endedAt }
    this.listeners = new Set();
    this.timers = new Map();
    events.on("hello", (message) => this.load((message.state && message.state.calls) || []));
    events.on("*", (message, type) => {
      if (type === "call.transferred" && message.call) this.remove(message.call.id);
      else if (type.startsWith("call.") && message.call) this.apply(message.call, type);
    });
  }

  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  changed(entry, previousStage) {
    for (const fn of [...this.listeners]) {
      try {
        fn(entry, previousStage);
      } catch (err) {
        console.error("calls: a listener failed", err);
      }
    }
  }

  reset() {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.calls.clear();
    this.changed(null);
  }

  /** The state after a (re)connection: exactly these calls are live. */
  load(list) {
    const live = new Set(list.map((call) => call.id));
    for (const [id, entry] of this.calls) {
      if (!live.has(id) && !DONE.has(entry.stage)) this.calls.delete(id);
    }
    for (const call of list) this.apply(call, "hello");
    this.changed(null);
  }

  /** Note that the user just asked for a call to be placed (POST /api/calls). */
  placed(id, to) {
    if (this.calls.has(id)) return;
    const call = { id, to: { number: to, name: null }, from: { number: "", name: null }, direction: "outgoing", state: "calling", dialled: to };
    this.apply(call, "placed", { placed: true });
  }

  apply(call, type, extra = {}) {
    const previous = this.calls.get(call.id);
    const seen = previous ? previous.seen : { stages: new Set(), ...extra };
    if (extra.placed) seen.placed = true;
    // The POST answer can arrive after the first events: never go backwards to it.
    if (type === "placed" && previous) return;
    const merged = previous ? { ...previous.call, ...call } : call;
    let stage = stageOf(merged, seen);
    const final = stage === "ended" || stage === "failed";
    // A call that ended before the page saw it ring (do not disturb sent it
    // straight to voicemail, or it is a leftover of a reconnection) is for the
    // call log, not for a pop-up.
    if (final && !previous) return;
    if (final && merged.direction === "incoming" && !seen.stages.has("connected") && !seen.stages.has("held")) {
      stage = "missed";
    }
    seen.stages.add(stage);
    const entry = { call: merged, stage, seen, reason: null, endedAt: null };
    if (stage === "failed") entry.reason = failureReason(merged, seen);
    if (stage === "missed") entry.reason = (merged.route || "").includes("voicemail") ? "voicemail" : "missed";
    if (final) {
      entry.endedAt = Date.now();
      clearTimeout(this.timers.get(call.id));
      this.timers.set(call.id, setTimeout(() => this.remove(call.id), ENDED_VISIBLE_MS));
    }
    this.calls.set(call.id, entry);
    this.changed(entry, previous ? previous.stage : null);
  }

  remove(id) {
    clearTimeout(this.timers.get(id));
    this.timers.delete(id);
    if (this.calls.delete(id)) this.changed(null);
  }

  /** Every call to show: live ones first (in start order), then ended ones. */
  list() {
    const entries = [...this.calls.values()];
    const done = (e) => DONE.has(e.stage);
    return [...entries.filter((e) => !done(e)), ...entries.filter(done)];
  }

  live() {
    return this.list().filter((e) => !DONE.has(e.stage));
  }
}

export const calls = new CallStore();

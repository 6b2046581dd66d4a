// The one live connection: the /api/events WebSocket (authenticated by the
// session cookie). It reconnects by itself with a growing, jittered delay,
// and every (re)connection starts with a `hello` carrying the current state,
// so the page is right again at once after a sleep or a network change (T8).
//
//   events.on("call.ringing", fn) -> unsubscribe      (type "*" gets every event)
//   events.on("hello", fn)       fn(message) with message.state
//   events.on("status", fn)      fn("connecting" | "open" | "offline")
//   events.state                 the last hello's state ({location, calls, ...})
//
// Close code 4401 means the connection's session ended: unless the page has a
// newer one (GET /api/me says), "unauthenticated" is emitted instead of
// reconnecting, so that the page can show the sign-in form.

import { api } from "./api.js";

const MIN_DELAY = 1000;
const MAX_DELAY = 30000;

class Events {
  constructor() {
    this.listeners = new Map();
    this.state = null;
    this.status = "offline";
    this.socket = null;
    this.wanted = false;
    this.attempt = 0;
    this.retryTimer = null;
    this.watchdog = null;
    this.pingInterval = 25;
    this.sessionChange = null;
    window.addEventListener("online", () => this.reconnectSoon());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.reconnectSoon();
    });
  }

  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.listeners.get(type)?.delete(fn);
  }

  emit(type, message) {
    for (const key of [type, "*"]) {
      for (const fn of [...(this.listeners.get(key) || [])]) {
        try {
          fn(message, type);
        } catch (err) {
          console.error(`events: a ${type} listener failed`, err);
        }
      }
    }
  }

  setStatus(status) {
    if (this.status === status) return;
    this.status = status;
    this.emit("status", status);
  }

  /** Open the connection (after sign-in) and keep it open until stop(). */
  start() {
    this.wanted = true;
    this.attempt = 0;
    if (!this.socket) this.connect();
  }

  /** Close for good (sign-out). */
  stop() {
    this.wanted = false;
    clearTimeout(this.retryTimer);
    clearTimeout(this.watchdog);
    this.state = null;
    const socket = this.socket;
    this.socket = null;
    if (socket) socket.close(1000, "signed out");
    this.setStatus("offline");
  }

  /**
   * The page is replacing its session (`promise`: the request that does it,
   * e.g. a password change, which ends every connection of the old one): a
   * 4401 close waits for it before deciding whether the page is signed out.
   */
  sessionChanging(promise) {
    this.sessionChange = promise;
  }

  /** Reconnect now if we should be connected and are not (back from sleep, network up). */
  reconnectSoon() {
    if (!this.wanted || this.socket) return;
    clearTimeout(this.retryTimer);
    this.attempt = 0;
    this.connect();
  }

  connect() {
    clearTimeout(this.retryTimer);
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    let socket;
    try {
      socket = new WebSocket(`${scheme}://${location.host}/api/events`);
    } catch (err) {
      console.error("events: cannot open the WebSocket", err);
      this.scheduleRetry();
      return;
    }
    this.socket = socket;
    this.setStatus("connecting");
    socket.addEventListener("message", (event) => this.onMessage(socket, event));
    socket.addEventListener("close", (event) => this.onClose(socket, event));
  }

  onMessage(socket, event) {
    if (socket !== this.socket) return;
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (!message || typeof message.type !== "string") return;
    this.armWatchdog();
    if (message.type === "ping") {
      socket.send(JSON.stringify({ type: "pong" }));
      return;
    }
    if (message.type === "hello") {
      this.attempt = 0;
      this.state = message.state || {};
      if (typeof message.ping_interval === "number") this.pingInterval = message.ping_interval;
      this.armWatchdog();
      this.setStatus("open");
    }
    this.emit(message.type, message);
  }

  // A connection that went silent for longer than the server's pings allow is
  // dead (a laptop woke up on another network): drop it and reconnect.
  armWatchdog() {
    clearTimeout(this.watchdog);
    const socket = this.socket;
    this.watchdog = setTimeout(() => {
      if (socket === this.socket && socket) socket.close(4000, "silent");
    }, this.pingInterval * 2500);
  }

  onClose(socket, event) {
    if (socket !== this.socket) return;
    this.socket = null;
    clearTimeout(this.watchdog);
    if (!this.wanted) return;
    if (event.code === 4401) {
      // The session this connection was opened with ended. This page may hold
      // a newer one (a password change here replaces the cookie): ask the API.
      this.setStatus("offline");
      const settled = Promise.resolve(this.sessionChange).catch(() => null);
      settled.then(() => api("GET", "/api/me")).then(
        () => {
          this.attempt = 0;
          if (this.wanted && !this.socket) this.connect();
        },
        (err) => {
          if (err.status === 401) {
            // (api.js has told the page already.)
            this.wanted = false;
            this.emit("unauthenticated", { code: event.code, reason: event.reason });
          } else {
            this.scheduleRetry();
          }
        },
      );
      return;
    }
    this.setStatus("offline");
    this.scheduleRetry();
  }

  scheduleRetry() {
    this.attempt += 1;
    const base = Math.min(MAX_DELAY, MIN_DELAY * 2 ** Math.min(this.attempt - 1, 5));
    const delay = base / 2 + Math.random() * (base / 2);
    this.retryTimer = setTimeout(() => {
      if (this.wanted && !this.socket) this.connect();
    }, delay);
  }
}

export const events = new Events();

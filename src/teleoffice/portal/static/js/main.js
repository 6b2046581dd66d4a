// The portal's shell: sign-in, the header and navigation, the hash router, the
// live call dock, and the `ctx` every view gets.
//
// A view is { path: "#/dial", title: "nav.dial", admin?: true, nav?: false,
//   icon?: "name", render(root, ctx) -> cleanup | undefined }.
// A path may have ":name" segments ("#/admin/users/:name"); their values are in
// ctx.params. Views with such segments, or nav: false, get no navigation entry.
// ctx = { api, t, tn, events, me, calls, toast, navigate, params, refreshMe }.

import { api, ApiError, onUnauthenticated } from "./api.js";
import { t, tn } from "./i18n.js";
import { events } from "./events.js";
import { h, clear, replace } from "./dom.js";
import { calls } from "./calls.js";
import { renderCallDock } from "./calldock.js";
import { renderSignIn } from "./signin.js";
import { userViews } from "./views/index.js";
import { adminViews } from "./admin/index.js";

const app = document.getElementById("app");
const toastsEl = document.getElementById("toasts");

let me = null;
let shell = null; // { main, nav, heading, viewRoot, status, ... } while signed in
let cleanupView = null;
let shellCleanups = [];
let voicemailNew = 0;

// ---- toasts ----------------------------------------------------------------------

/** Show a short message; kind is "info", "success" or "error". */
export function toast(message, kind = "info") {
  const item = h("div", { class: ["toast", `toast-${kind}`], role: kind === "error" ? "alert" : null }, message);
  toastsEl.append(item);
  setTimeout(() => item.classList.add("toast-leaving"), kind === "error" ? 6000 : 3500);
  setTimeout(() => item.remove(), kind === "error" ? 6400 : 3900);
}

// ---- routing -----------------------------------------------------------------------

function allViews() {
  const admin = me && me.is_admin ? adminViews : adminViews.map((view) => ({ ...view, forbidden: true }));
  return [...userViews, ...admin];
}

function match(view, hash) {
  const want = view.path.split("/");
  const have = hash.split("/");
  if (want.length !== have.length) return null;
  const params = {};
  for (let i = 0; i < want.length; i += 1) {
    if (want[i].startsWith(":")) {
      if (!have[i]) return null;
      params[want[i].slice(1)] = decodeURIComponent(have[i]);
    } else if (want[i] !== have[i]) {
      return null;
    }
  }
  return params;
}

function currentHash() {
  const hash = location.hash || "#/";
  return hash === "#" ? "#/" : hash.split("?")[0];
}

export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function route() {
  if (!shell) return;
  const hash = currentHash();
  let found = null;
  let params = {};
  for (const view of allViews()) {
    const got = match(view, hash);
    if (got) {
      found = view;
      params = got;
      break;
    }
  }
  if (!found) {
    navigate("#/");
    return;
  }
  if (cleanupView) {
    try {
      cleanupView();
    } catch (err) {
      console.error("cleanup of a view failed", err);
    }
    cleanupView = null;
  }
  const title = t(found.title);
  document.title = `${title} · ${t("app.name")}`;
  shell.heading.textContent = title;
  clear(shell.viewRoot);
  shell.viewRoot.className = `view view-${found.path.split("/")[1] || "home"}${found.admin ? " view-admin" : ""}`;
  for (const link of shell.nav.querySelectorAll("a")) {
    const active = link.getAttribute("href") === hash || (hash.startsWith(link.getAttribute("href") + "/") && link.getAttribute("href") !== "#/");
    if (active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (found.forbidden) {
    shell.heading.textContent = t("shell.forbidden.title");
    shell.viewRoot.append(h("p", { class: "notice notice-error" }, t("shell.forbidden.text")));
  } else {
    const ctx = { api, t, tn, events, me, calls, toast, navigate, params, refreshMe };
    try {
      const cleanup = found.render(shell.viewRoot, ctx);
      cleanupView = typeof cleanup === "function" ? cleanup : null;
    } catch (err) {
      console.error("a view failed to render", err);
      shell.viewRoot.append(h("p", { class: "notice notice-error" }, t("shell.view_failed")));
    }
  }
  // Move focus to the page's heading so keyboard and screen reader users start
  // at the top of what changed (not on the first render, which starts at the top).
  if (shell.routed) shell.heading.focus({ preventScroll: false });
  shell.routed = true;
}

// ---- signed in: the shell -------------------------------------------------------------

async function refreshMe() {
  me = await api("GET", "/api/me");
  if (shell) shell.userName.textContent = me.display_name || me.username;
  return me;
}

function navLink(view) {
  const badge = view.path === "#/voicemail" ? h("span", { class: "badge", hidden: voicemailNew === 0, "data-badge": "voicemail" }, String(voicemailNew)) : null;
  return h("li", {}, h("a", { href: view.path, class: "nav-link" }, h("span", { class: ["icon", `icon-${view.icon || "dot"}`], "aria-hidden": "true" }), h("span", { class: "nav-text" }, t(view.title)), badge));
}

function showVoicemailBadge(count) {
  voicemailNew = count;
  if (!shell) return;
  const badge = shell.nav.querySelector('[data-badge="voicemail"]');
  if (badge) {
    badge.textContent = String(count);
    badge.hidden = count === 0;
    badge.setAttribute("aria-label", tn("voicemail.new_count", count));
  }
}

function buildShell() {
  const inNav = (view) => !view.path.includes(":") && view.nav !== false;
  const nav = h(
    "nav",
    { class: "nav", "aria-label": t("shell.nav") },
    h("ul", { class: "nav-list" }, userViews.filter(inNav).map(navLink)),
    me.is_admin && adminViews.some(inNav)
      ? [h("p", { class: "nav-section" }, t("shell.admin")), h("ul", { class: "nav-list" }, adminViews.filter(inNav).map(navLink))]
      : null,
  );
  const status = h("span", { class: "conn conn-offline", role: "status", "aria-live": "polite" }, t("shell.conn.offline"));
  const userName = h("span", { class: "user-name" }, me.display_name || me.username);
  const signOut = h("button", { type: "button", class: "btn btn-quiet", onclick: signOutNow }, t("shell.sign_out"));
  const header = h(
    "header",
    { class: "topbar" },
    h("a", { class: "skip-link", href: "#main" }, t("shell.skip")),
    h("a", { class: "brand", href: "#/" }, h("span", { class: "brand-mark", "aria-hidden": "true" }), t("app.name")),
    h("div", { class: "topbar-right" }, status, h("span", { class: "user" }, userName, h("span", { class: "user-ext" }, t("shell.extension", { extension: me.extension }))), signOut),
  );
  const heading = h("h1", { class: "page-title", tabindex: "-1" });
  const viewRoot = h("div", { class: "view" });
  const main = h("main", { id: "main", class: "main", tabindex: "-1" }, heading, viewRoot);
  const dock = h("aside", { class: "dock", "aria-label": t("calls.dock") });
  // The call dock comes right after the header in the tab order (it floats at
  // the bottom of the screen): answering a waiting call is never a long way away.
  replace(app, header, dock, h("div", { class: "layout" }, nav, main));
  app.removeAttribute("aria-busy");
  shell = { nav, main, heading, viewRoot, status, userName, dock, routed: false };
  const statusText = { open: "shell.conn.open", connecting: "shell.conn.connecting", offline: "shell.conn.offline" };
  const showStatus = (value) => {
    status.textContent = t(statusText[value] || "shell.conn.offline");
    status.className = `conn conn-${value}`;
  };
  showStatus(events.status);
  shellCleanups.push(events.on("status", showStatus));
  shellCleanups.push(events.on("settings.changed", (message) => {
    if (message.settings) me = Object.assign(me, message.settings);
  }));
  shellCleanups.push(events.on("voicemail.changed", (message) => showVoicemailBadge(message.new || 0)));
  shellCleanups.push(events.on("voicemail.new", () => {
    toast(t("voicemail.toast_new"), "info");
    refreshVoicemailCount();
  }));
  shellCleanups.push(renderCallDock(dock, { api, t, tn, events, me, calls, toast, navigate }));
}

async function refreshVoicemailCount() {
  try {
    const box = await api("GET", "/api/me/voicemail");
    showVoicemailBadge(box.new || 0);
  } catch {
    // No mailbox on this server (503) or none for the user: no badge.
  }
}

async function startSession() {
  calls.reset();
  buildShell();
  events.start();
  refreshVoicemailCount();
  route();
}

function stopSession() {
  if (cleanupView) cleanupView();
  cleanupView = null;
  for (const fn of shellCleanups) fn();
  shellCleanups = [];
  events.stop();
  calls.reset();
  shell = null;
  me = null;
}

async function signOutNow() {
  try {
    await api("POST", "/api/logout");
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) {
      toast(t("shell.sign_out_failed"), "error");
      return;
    }
  }
  stopSession();
  showSignIn(t("signin.signed_out"));
}

function showSignIn(notice) {
  document.title = `${t("signin.title")} · ${t("app.name")}`;
  app.removeAttribute("aria-busy");
  renderSignIn(app, {
    notice,
    onSignedIn: async () => {
      try {
        await refreshMe();
      } catch (err) {
        showSignIn(t("signin.failed"));
        return;
      }
      startSession();
    },
  });
}

function sessionEnded() {
  if (!shell) return;
  stopSession();
  showSignIn(t("signin.session_ended"));
}

onUnauthenticated(sessionEnded);
events.on("unauthenticated", sessionEnded);
window.addEventListener("hashchange", route);

async function boot() {
  try {
    await refreshMe();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      showSignIn();
      return;
    }
    replace(app, h("div", { class: "boot-error" }, h("h1", {}, t("app.name")), h("p", { class: "notice notice-error", role: "alert" }, t("shell.unreachable")), h("button", { type: "button", class: "btn", onclick: boot }, t("shell.retry"))));
    app.removeAttribute("aria-busy");
    return;
  }
  startSession();
}

boot();

// All visible text of the portal lives in static/i18n/<lang>/*.js, one module
// per area (user.js, admin.js), each `export default { "key": "Text {param}" }`.
// A translation is a copy of that folder; nothing else needs to change.

import user from "../i18n/en/user.js";
import admin from "../i18n/en/admin.js";

const strings = Object.assign({}, user, admin);

/** The locale for dates and numbers: the browser's own (24-hour clocks stay 24-hour). */
export const locale = navigator.language || document.documentElement.lang || "en";

/**
 * The text for `key`, with `{name}` placeholders filled from `params`.
 * An unknown key shows as itself (and is logged), so a missing string is
 * visible rather than blank.
 */
export function t(key, params) {
  let text = strings[key];
  if (text === undefined) {
    console.warn(`i18n: no text for ${key}`);
    text = key;
  }
  if (!params) return text;
  return text.replace(/\{(\w+)\}/g, (match, name) =>
    Object.prototype.hasOwnProperty.call(params, name) ? String(params[name]) : match,
  );
}

/** `key.one` when n is 1, else `key.other`, with {n} and `params` filled in. */
export function tn(key, n, params) {
  return t(`${key}.${n === 1 ? "one" : "other"}`, { n, ...(params || {}) });
}

/** Whether a key exists (for optional texts, e.g. a message for an error code). */
export function has(key) {
  return strings[key] !== undefined;
}

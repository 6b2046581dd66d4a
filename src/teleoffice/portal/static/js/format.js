// Formatting of numbers, names, times and durations for display.

import { t, locale } from "./i18n.js";

/** "Bob Jones" or the number when there is no name. */
export function partyName(party) {
  if (!party) return t("calls.unknown");
  return party.name || party.number || t("calls.unknown");
}

/** The number of a party, or "" when the name already is the number. */
export function partyNumber(party) {
  if (!party || !party.number) return "";
  return party.name && party.name !== party.number ? party.number : "";
}

/** Seconds as m:ss, or h:mm:ss from an hour on. */
export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${rest}` : `${minutes}:${rest}`;
}

/** A date-time from the API (ISO) as "14:05" today, else "12 Mar, 14:05". */
export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const today = new Date();
  const sameDay = date.toDateString() === today.toDateString();
  const time = date.toLocaleTimeString(locale, { hour: "2-digit", minute: "2-digit" });
  if (sameDay) return time;
  const day = date.toLocaleDateString(locale, { day: "numeric", month: "short", year: date.getFullYear() === today.getFullYear() ? undefined : "numeric" });
  return t("format.day_time", { day, time });
}

/** The full date and time, for a title or a screen reader. */
export function fullWhen(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleString(locale, { dateStyle: "full", timeStyle: "short" });
}

/** Seconds since an ISO time (never negative). */
export function since(iso) {
  if (!iso) return 0;
  return Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
}

// Admin forms: fields, and the API's validation errors shown beside the field
// they are about.
//
// The API says what is wrong in its error message (portal/errors.py): input
// checks as "field: problem; other: problem", the store's own checks as a
// sentence that names what it is about ("prefix 90 overlaps prefix 9 of trunk
// 'pstn'"). So each problem goes to the field it names; what names no field of
// the form is shown above the submit button. Forms are `novalidate`: the
// server's checks are the ones that count, and the browser's own bubbles would
// say something different in a different place.

import { h, field, checkbox, uid } from "../dom.js";
import { t } from "../i18n.js";

/** A multi-line text field (one item per line): returns { field, input }. */
export function textarea({ label, name, value, hint, rows = 4 }) {
  const id = uid(name || "text");
  const hintId = hint ? `${id}-hint` : null;
  const input = h("textarea", { id, name, rows, spellcheck: "false", autocomplete: "off", "aria-describedby": hintId });
  input.value = value || "";
  return {
    field: h("div", { class: "field" }, h("label", { for: id }, label), input, hintId ? h("p", { class: "hint", id: hintId }, hint) : null),
    input,
  };
}

/** The lines of a textarea, trimmed, without empty ones. */
export function lines(input) {
  return input.value
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean);
}

/** A number as typed, without the spaces and punctuation people write in numbers. */
export function digits(input) {
  return input.value.replace(/[\s().\/-]/g, "");
}

export { field, checkbox };

// Pydantic's wording for a pattern mismatch shows the regular expression; the
// field's hint explains the format in words instead.
function friendly(problem) {
  if (/^String should match pattern/.test(problem)) return t("admin.form.bad_format");
  if (/^Field required$/.test(problem)) return t("admin.form.required");
  if (/^Extra inputs are not permitted$/.test(problem)) return t("admin.form.unknown_field");
  let found = /^String should have at (least|most) (\d+) characters?$/.exec(problem);
  if (found) return t(found[1] === "least" ? "admin.form.min_length" : "admin.form.max_length", { n: found[2] });
  found = /^Input should be (greater|less) than or equal to (-?\d+)$/.exec(problem);
  if (found) return t(found[1] === "greater" ? "admin.form.min_value" : "admin.form.max_value", { n: found[2] });
  if (/^Input should be a valid integer/.test(problem)) return t("admin.form.integer");
  return problem;
}

/**
 * The errors of one form. `register(name, fieldObj, words?)` makes a field a
 * target for the API's problems about `name` (and, for the store's sentences,
 * about any of `words`, default: the name with spaces).
 */
export class FormErrors {
  constructor(form) {
    this.form = form;
    this.fields = new Map();
    this.summary = h("p", { class: "notice notice-error form-summary", role: "alert", tabindex: "-1", hidden: true, "data-role": "form-error" });
  }

  register(name, fieldObj, words) {
    this.fields.set(name, { ...fieldObj, words: words || [name.replace(/_/g, " ")] });
    return fieldObj;
  }

  clear() {
    for (const { field: wrap, input } of this.fields.values()) {
      for (const old of wrap.querySelectorAll(".field-error")) old.remove();
      input.removeAttribute("aria-invalid");
      const described = (input.getAttribute("aria-describedby") || "").split(" ").filter((id) => id && !id.endsWith("-error"));
      if (described.length) input.setAttribute("aria-describedby", described.join(" "));
      else input.removeAttribute("aria-describedby");
    }
    this.summary.hidden = true;
    this.summary.textContent = "";
  }

  mark(name, problem) {
    const target = this.fields.get(name);
    const errorId = `${target.input.id || uid(name)}-error`;
    const existing = target.field.querySelector(".field-error");
    if (existing) {
      existing.textContent = `${existing.textContent} ${problem}`;
      return target.input;
    }
    const note = h("p", { class: "field-error", id: errorId, "data-error-for": name }, friendly(problem));
    // Before the hint, right under the input: where the eye already is.
    target.input.after(note);
    target.input.setAttribute("aria-invalid", "true");
    const described = (target.input.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
    target.input.setAttribute("aria-describedby", [errorId, ...described].join(" "));
    return target.input;
  }

  guess(problem) {
    // The field whose name the sentence mentions first.
    const text = problem.toLowerCase();
    let best = null;
    let bestAt = Infinity;
    for (const [name, { words }] of this.fields) {
      for (const word of words) {
        const at = text.search(new RegExp(`(^|[^a-z_])${word.toLowerCase().replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}([^a-z_]|$)`));
        if (at >= 0 && at < bestAt) {
          best = name;
          bestAt = at;
        }
      }
    }
    return best;
  }

  /** Show a failed request's problems; returns true when it was shown here. */
  show(err) {
    this.clear();
    const message = err && err.message ? String(err.message) : String(err);
    if (!err || (err.status !== 422 && err.status !== 409)) {
      this.summary.textContent = t("admin.form.failed", { message });
      this.summary.hidden = false;
      return true;
    }
    const leftover = [];
    let first = null;
    for (const part of message.split("; ")) {
      const named = /^([a-z_]+)(?:\.\d+)*: (.*)$/s.exec(part);
      let name = named && this.fields.has(named[1]) ? named[1] : null;
      let problem = named && name ? named[2] : part;
      if (!name) name = this.guess(part);
      if (name) {
        const input = this.mark(name, problem);
        first = first || input;
      } else {
        leftover.push(friendly(part));
      }
    }
    if (leftover.length) {
      this.summary.textContent = leftover.join(" ");
      this.summary.hidden = false;
    }
    if (first) first.focus();
    else if (!this.summary.hidden) this.summary.focus();
    return true;
  }
}

/**
 * A form that submits through `onSubmit(errors)`; while it runs the submit
 * button is disabled and says so. Returns { form, errors, actions }.
 */
export function adminForm({ onSubmit, submitLabel, role, busyLabel, extraActions }) {
  const submit = h("button", { type: "submit", class: "btn btn-primary", "data-action": role ? `${role}-save` : "save" }, submitLabel || t("admin.save"));
  const actions = h("div", { class: "form-actions" }, submit, extraActions || null);
  const form = h("form", { class: "admin-form", novalidate: true, "data-role": role || null });
  const errors = new FormErrors(form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (submit.disabled) return;
    const label = submit.textContent;
    submit.disabled = true;
    submit.textContent = busyLabel || t("admin.saving");
    errors.clear();
    try {
      await onSubmit(errors);
    } catch (err) {
      errors.show(err);
    } finally {
      submit.disabled = false;
      submit.textContent = label;
    }
  });
  return { form, errors, actions, submit, finish: () => form.append(errors.summary, actions) };
}

// Small DOM helpers. Data never goes through innerHTML: text is always set as
// text nodes, so a caller's name or a status message cannot inject markup.

/**
 * Create an element.
 *   h("button", { class: "btn", onclick: fn, "aria-label": "Hang up" }, "Hang up")
 * attrs: `class` (string or array), `dataset` (object), `style` is refused (CSP),
 * `on<event>` (function: addEventListener), boolean values set/omit the attribute,
 * `value`/`checked`/`disabled`/`selected`/`hidden` are set as properties.
 * children: strings, numbers, nodes, arrays of them; null/undefined/false are skipped.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") {
      el.className = Array.isArray(value) ? value.filter(Boolean).join(" ") : value;
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (["value", "checked", "disabled", "selected", "hidden", "muted"].includes(key)) {
      el[key] = value;
    } else if (key === "style") {
      throw new Error("inline styles are not allowed (CSP); use a class");
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

/** Append children (as h() takes them) to `el`. */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Remove every child of `el`. */
export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/** Replace the children of `el`. */
export function replace(el, ...children) {
  clear(el);
  return append(el, children);
}

let idCounter = 0;
/** A document-unique id, for label/aria wiring. */
export function uid(prefix = "id") {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/**
 * A labelled form field: returns { field, input }.
 *   field({ label, type, name, value, hint, autocomplete, required, inputmode, pattern })
 */
export function field(options) {
  const id = uid(options.name || "field");
  const hintId = options.hint ? `${id}-hint` : null;
  const input =
    options.type === "select"
      ? h(
          "select",
          { id, name: options.name, "aria-describedby": hintId },
          (options.options || []).map(([value, text]) =>
            h("option", { value, selected: String(options.value) === String(value) }, text),
          ),
        )
      : h("input", {
          id,
          name: options.name,
          type: options.type || "text",
          value: options.value ?? "",
          autocomplete: options.autocomplete || "off",
          required: options.required,
          inputmode: options.inputmode,
          pattern: options.pattern,
          maxlength: options.maxlength,
          min: options.min,
          max: options.max,
          placeholder: options.placeholder,
          list: options.list,
          "aria-describedby": hintId,
        });
  const wrap = h(
    "div",
    { class: "field" },
    h("label", { for: id }, options.label),
    input,
    hintId ? h("p", { class: "hint", id: hintId }, options.hint) : null,
  );
  return { field: wrap, input };
}

/** A checkbox with its label: returns { field, input }. */
export function checkbox(options) {
  const id = uid(options.name || "check");
  const input = h("input", { id, type: "checkbox", name: options.name, checked: !!options.checked });
  const hintId = options.hint ? `${id}-hint` : null;
  if (hintId) input.setAttribute("aria-describedby", hintId);
  return {
    field: h(
      "div",
      { class: "field field-check" },
      input,
      h("label", { for: id }, options.label),
      hintId ? h("p", { class: "hint", id: hintId }, options.hint) : null,
    ),
    input,
  };
}

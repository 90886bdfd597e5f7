// Building the page: elements from a tag, attributes and children; form fields; errors shown
// next to the form that caused them. No HTML strings: every text goes in as text.

export function h(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, value);
  }
  node.append(...[children].flat().filter((c) => c !== undefined && c !== null && c !== false));
  return node;
}

/** A labelled input, select or textarea. */
export function field(label, control, hint) {
  return h("label", { class: "field" }, [
    h("span", { text: label }),
    control,
    hint ? h("small", { class: "hint", text: hint }) : null,
  ]);
}

export function input(name, attributes = {}) {
  return h("input", { name, id: attributes.id ?? `f-${name}`, ...attributes });
}

/** A select of `options` (values, or [value, text] pairs); `attributes.id` names it where
 *  several forms of a page share the field's name. */
export function select(name, options, selected, attributes = {}) {
  return h(
    "select",
    { name, id: `f-${name}`, ...attributes },
    options.map((o) => {
      const [value, text] = Array.isArray(o) ? o : [o, o];
      return h("option", { value, text, selected: value === selected });
    }),
  );
}

export function checkbox(name, label, checked = false) {
  return h("label", { class: "check" }, [
    h("input", { type: "checkbox", name, id: `f-${name}`, checked }),
    h("span", { text: label }),
  ]);
}

/** A line (a `p`, or a `span` beside a control) that says how an action went: `say` a success,
 *  `fail` an error. */
export function statusLine(attributes = {}, tag = "p") {
  const node = h(tag, { class: "status", role: "status", "aria-live": "polite", ...attributes });
  const set = (className, text) => {
    node.className = className;
    node.textContent = text;
  };
  return { node, say: (text = "") => set("status", text), fail: (e) => set("status error", e.message) };
}

/** A form whose submit runs `action(values, form)`; an error thrown shows beside the form,
 *  success shows `done` (text, or a function of the result). */
export function form(attributes, children, action, done = "Done.") {
  const status = statusLine();
  const node = h("form", attributes, [...children, status.node]);
  node.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.say();
    const button = node.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    try {
      const result = await action(values(node), node);
      // Text only: `done` may have marked the line (the publish form's "warn").
      status.node.textContent = typeof done === "function" ? done(result) : done;
    } catch (e) {
      status.fail(e);
    } finally {
      if (button) button.disabled = false;
    }
  });
  return node;
}

/** A form's values by name: checkboxes as booleans, everything else as text. */
export function values(formNode) {
  const out = {};
  for (const el of formNode.elements) {
    if (!el.name) continue;
    out[el.name] = el.type === "checkbox" ? el.checked : el.value;
  }
  return out;
}

export function button(text, onclick, attributes = {}) {
  return h("button", { type: "button", text, onclick, ...attributes });
}

/** A button that asks before it acts. */
export function dangerButton(text, question, action, attributes = {}) {
  return button(
    text,
    async (event) => {
      if (!window.confirm(question)) return;
      event.target.disabled = true;
      try {
        await action();
      } finally {
        event.target.disabled = false;
      }
    },
    { class: "danger", ...attributes },
  );
}

/** Text in the muted colour: a dash for nothing, "none", "No access". */
export function muted(text) {
  return h("span", { class: "muted", text });
}

/** A short feature mark (D, AD, TTL...) whose title says what it means. */
export function badge(text, title, extra = "") {
  return h("abbr", { class: `badge ${extra}`.trim(), title, text });
}

/** A titled section. */
export function section(title, children, attributes = {}) {
  return h("section", { class: "panel", ...attributes }, [h("h3", { text: title }), ...children]);
}

/** A table of label → value rows (values already formatted). */
export function facts(rows) {
  return h(
    "table",
    { class: "facts" },
    rows.filter(Boolean).map(([label, value, numeric]) =>
      h("tr", {}, [
        h("th", { scope: "row", text: label }),
        h("td", { class: numeric ? "num" : undefined }, [value instanceof Node ? value : String(value ?? "")]),
      ]),
    ),
  );
}

/** A link to one of the UI's own pages. */
export function link(text, ...path) {
  return h("a", { href: route(...path), text });
}

/** `#/queues/%2F/name` for ("queues", "/", "name"). */
export function route(...path) {
  return `#/${path.map(encodeURIComponent).join("/")}`;
}

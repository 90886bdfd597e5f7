// The fields the add-user form and the update-user form share: tags with RabbitMQ's buttons,
// and a password with its confirmation.

import { checkbox, field, h, input } from "../../dom.js";
import { tagList } from "./common.js";

/** The tags RabbitMQ's UI offers as buttons, with the labels it gives them. */
const USER_TAGS = [
  ["administrator", "Admin"],
  ["monitoring", "Monitoring"],
  ["policymaker", "Policymaker"],
  ["management", "Management"],
  ["impersonator", "Impersonator"],
];

/** A tags input with RabbitMQ's "Set" buttons that add a tag (and "None" that clears). */
export function tagsField(id, value = "") {
  const tags = input("tags", { id, value, autocomplete: "off", spellcheck: "false" });
  const add = (tag) => {
    const list = tagList(tags.value);
    if (!list.includes(tag)) list.push(tag);
    tags.value = list.join(", ");
    tags.focus();
  };
  return h("div", { class: "tags-field" }, [
    field("Tags", tags, "Comma-separated, e.g. administrator, monitoring"),
    h("div", { class: "tag-buttons", role: "group", "aria-label": "Add a tag" }, [
      h("span", { class: "muted", text: "Set: " }),
      ...USER_TAGS.map(([tag, label]) =>
        h("button", {
          type: "button",
          class: "link",
          text: label,
          title: tag,
          "data-tag": tag,
          "aria-label": `Add tag ${tag}`,
          onclick: () => add(tag),
        }),
      ),
      h("button", {
        type: "button",
        class: "link",
        text: "None",
        "aria-label": "Remove all tags",
        onclick: () => {
          tags.value = "";
          tags.focus();
        },
      }),
    ]),
  ]);
}

/** Password and confirmation (#{prefix}-password, #{prefix}-password-confirm), and a checkbox,
 *  [name, label], that turns both off and says what that means. */
export function passwordFields(prefix, [checkName, checkLabel], passwordLabel = "Password") {
  const password = input("password", { id: `${prefix}-password`, type: "password", autocomplete: "new-password" });
  const confirm = input("password-confirm", {
    id: `${prefix}-password-confirm`,
    type: "password",
    autocomplete: "new-password",
  });
  const toggle = checkbox(checkName, checkLabel);
  const box = toggle.querySelector("input");
  box.addEventListener("change", () => {
    password.disabled = box.checked;
    confirm.disabled = box.checked;
  });
  return {
    nodes: [
      h("div", { class: "pair" }, [field(passwordLabel, password), field("Confirm password", confirm)]),
      toggle,
    ],
    reset() {
      password.disabled = false;
      confirm.disabled = false;
    },
  };
}

// Users and virtual hosts, the two sides of a permission and the owners of limits. A user's page
// and a vhost's page show the same panels, each from its own side: what differs is said here.

import { notFound, path, Unauthorized } from "../../api.js";
import { dangerButton, h, link, route, section, statusLine } from "../../dom.js";
import { call, refuse, start, whoami } from "./common.js";

export const SIDES = {
  user: {
    key: "user",
    label: "User",
    noun: "user",
    plural: "users",
    collection: "users",
    limits: [
      ["max-connections", "Max connections"],
      ["max-channels", "Max channels"],
    ],
    // How a permission row or message names a user: "Permission for alice set", "… of alice".
    prepositions: { set: "for", clear: "of" },
    noPermissions: "No permissions: this user cannot use any virtual host.",
  },
  vhost: {
    key: "vhost",
    label: "Virtual host",
    noun: "virtual host",
    plural: "virtual hosts",
    collection: "vhosts",
    limits: [
      ["max-connections", "Max connections"],
      ["max-queues", "Max queues"],
    ],
    prepositions: { set: "on", clear: "on" },
    noPermissions: "No user may use this virtual host.",
  },
};

/** The side a page of `side` picks in its permission forms. */
export function otherSide(side) {
  return side === SIDES.user ? SIDES.vhost : SIDES.user;
}

/**
 * Starts the page of one user or vhost: tabs, its name as the title, the administrator check,
 * then the object. Returns { me, current }, or null (with a note) when the page shows nothing.
 */
export async function openPage(view, side, name) {
  start(view, side.collection, h("h2", {}, [`${side.label} `, h("span", { class: "name", text: name })]));
  const me = await whoami();
  if (refuse(view, me)) return null;
  try {
    return { me, current: await call(path(side.collection, name)) };
  } catch (e) {
    if (!notFound(e)) throw e;
    view.root.append(
      h("p", { class: "error", role: "alert", text: `There is no ${side.noun} named “${name}”.` }),
      h("p", {}, [link(`All ${side.plural}`, "admin", side.collection)]),
    );
    return null;
  }
}

/** The "Delete this …" panel; `consequence` says what goes with it. Back to the list after. */
export function deleteSection(side, name, consequence) {
  const status = statusLine();
  const remove = dangerButton(
    `Delete this ${side.noun}`,
    `Delete ${side.noun} ${name}? ${consequence}`,
    async () => {
      try {
        await call(path(side.collection, name), { method: "DELETE" });
        location.hash = route("admin", side.collection);
      } catch (e) {
        if (e instanceof Unauthorized) throw e;
        status.fail(e);
      }
    },
    { id: `delete-${side.key}` },
  );
  return section(`Delete this ${side.noun}`, [h("div", { class: "actions" }, [remove]), status.node]);
}

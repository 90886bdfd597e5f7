// The users list, with who may use which vhost, and the form that adds a user.

import { path, Unauthorized } from "../../api.js";
import { field, form, h, input, link, muted, section } from "../../dom.js";
import { pagedTable } from "../../table.js";
import { badges, call, cleanTags, exists, refuse, start, whoami } from "./common.js";
import { passwordFields, tagsField } from "./user-fields.js";

export async function users(view) {
  start(view, "users", "Users");
  const me = await whoami();
  if (refuse(view, me)) return;

  let access = new Map(); // user → the vhosts it has permissions on
  const table = pagedTable({
    path: "/users",
    id: "users-table",
    columns: [
      { label: "Name", sort: "name", value: (u) => link(u.name, "admin", "users", u.name) },
      { label: "Tags", sort: "tags", value: (u) => badges(u.tags) },
      {
        label: "Can access virtual hosts",
        value: (u) => {
          const vhosts = access.get(u.name);
          return vhosts?.length ? vhosts.join(", ") : muted("No access");
        },
      },
      { label: "Has password", value: (u) => (u.password_hash ? "Yes" : "No") },
    ],
    empty: "No users.",
  });

  view.root.append(section("All users", [table.node]), section("Add a user", [addUser(table)]));

  await view.poll(async () => {
    try {
      access = await vhostsByUser();
    } catch (e) {
      if (e instanceof Unauthorized) throw e;
    }
    await table.refresh();
  });
}

/** Every user's vhosts (those it has permissions on), sorted. */
async function vhostsByUser() {
  const permissions = await call("/permissions");
  const out = new Map();
  for (const p of permissions) {
    if (!out.has(p.user)) out.set(p.user, []);
    out.get(p.user).push(p.vhost);
  }
  for (const list of out.values()) list.sort();
  return out;
}

function addUser(table) {
  const pw = passwordFields("user", ["no-password", "No password (the user cannot log in with a password)"]);
  return form(
    { class: "stack", id: "add-user" },
    [
      field("Username", input("username", { id: "user-name", required: true, autocomplete: "off", spellcheck: "false" })),
      ...pw.nodes,
      tagsField("user-tags"),
      h("div", { class: "actions" }, [h("button", { type: "submit", text: "Add user" })]),
    ],
    async (v, node) => {
      const name = v.username.trim();
      if (!name) throw new Error("Give the user a name.");
      const body = { tags: cleanTags(v.tags) };
      if (v["no-password"]) {
        body.password_hash = "";
      } else {
        if (!v.password) throw new Error("Give a password, or tick “No password”.");
        if (v.password !== v["password-confirm"]) throw new Error("The passwords do not match.");
        body.password = v.password;
      }
      // A PUT on an existing user would replace it (and its password): refuse here instead.
      if (await exists("users", name)) throw new Error(`A user named “${name}” already exists; change it on its page.`);
      await call(path("users", name), { method: "PUT", body });
      node.reset();
      pw.reset();
      await table.refresh().catch(() => {});
      return name;
    },
    (name) => `User ${name} added.`,
  );
}

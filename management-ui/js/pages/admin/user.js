// A user's page: its overview, the form that updates its password and tags, its permissions,
// topic permissions and limits, and deleting it.
//
// A PUT of a user without a password clears the user's password, so "update" sends the stored
// hash back when the password is left alone.

import { logIn, path, vhostNames } from "../../api.js";
import { facts, form, h, muted, section } from "../../dom.js";
import { badges, call, cleanTags, live, part, tagList } from "./common.js";
import { limitsPanel, permissionsPanel, topicPermissionsPanel } from "./permissions.js";
import { deleteSection, openPage, SIDES } from "./sides.js";
import { passwordFields, tagsField } from "./user-fields.js";

export async function user(view, name) {
  const opened = await openPage(view, SIDES.user, name);
  if (!opened) return;
  const vhosts = await vhostNames();

  const overview = part("user-facts");
  async function refreshUser() {
    const [u, perms] = await Promise.all([call(path("users", name)), call(path("users", name, "permissions"))]);
    overview.show(
      facts([
        ["Name", u.name],
        ["Tags", badges(u.tags)],
        ["Has password", u.password_hash ? "Yes" : "No"],
        ["Hashing algorithm", u.hashing_algorithm ?? ""],
        [
          "Can access virtual hosts",
          perms.length ? perms.map((p) => p.vhost).sort().join(", ") : muted("No access"),
        ],
      ]),
    );
  }

  const permissions = permissionsPanel(view, SIDES.user, name, { names: vhosts, cleared: refreshUser });
  const topics = topicPermissionsPanel(view, SIDES.user, name, { names: vhosts });
  const limits = limitsPanel(view, SIDES.user, name);

  view.root.append(
    h("div", { class: "grid" }, [
      section("Overview", [overview.node]),
      section("Update this user", [updateForm(name, opened, refreshUser)]),
    ]),
    permissions.node,
    topics.node,
    limits.node,
    deleteSection(SIDES.user, name, "Its permissions go with it."),
  );

  await Promise.all([live(view, overview, refreshUser), permissions.poll(), topics.poll(), limits.poll()]);
}

/** The form that changes a user's password (or keeps or removes it) and its tags. */
function updateForm(name, { me, current }, refreshUser) {
  const off = ["clear-password", "Remove the password (the user can no longer log in with one)"];
  const pw = passwordFields("update", off, "New password");
  return form(
    { class: "stack", id: "update-user" },
    [
      ...pw.nodes,
      h("p", {
        class: "hint muted",
        text:
          "Leave both password fields empty to keep the current password: the API clears a password " +
          "when an update names none, so this form sends the stored password hash back.",
      }),
      tagsField("update-tags", tagList(current.tags).join(", ")),
      h("div", { class: "actions" }, [h("button", { type: "submit", text: "Update user" })]),
    ],
    async (v, node) => {
      const fresh = await call(path("users", name));
      const body = { tags: cleanTags(v.tags) };
      let newPassword = null;
      if (v["clear-password"]) {
        body.password_hash = "";
      } else if (v.password || v["password-confirm"]) {
        if (v.password !== v["password-confirm"]) throw new Error("The passwords do not match.");
        body.password = v.password;
        newPassword = v.password;
      } else {
        body.password_hash = fresh.password_hash ?? "";
        if (fresh.hashing_algorithm) body.hashing_algorithm = fresh.hashing_algorithm;
      }
      await call(path("users", name), { method: "PUT", body });
      // Changing one's own password: keep the session working with the new one.
      if (newPassword !== null && name === me.name) logIn(name, newPassword);
      for (const el of node.querySelectorAll("input[type=password]")) el.value = "";
      await refreshUser();
      return v["clear-password"] ? "removed" : newPassword !== null ? "changed" : "kept";
    },
    (what) => `User updated; password ${what}.`,
  );
}

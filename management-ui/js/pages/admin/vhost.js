// A virtual host's page: its overview with the tracing switch, the form that updates its
// metadata, its permissions, topic permissions and limits, and deleting it.
//
// A PUT of a vhost replaces its metadata, so the tracing switch sends the description and tags
// too, and the update form sends the tracing state.

import { path, Unauthorized } from "../../api.js";
import { facts, field, form, h, input, muted, section, select, statusLine } from "../../dom.js";
import { bytes, count } from "../../format.js";
import { badges, call, cleanTags, live, part, tagList, userNames } from "./common.js";
import { limitsPanel, permissionsPanel, topicPermissionsPanel } from "./permissions.js";
import { deleteSection, openPage, SIDES } from "./sides.js";
import { QUEUE_TYPES, rate, vhostDescription, vhostTags } from "./vhosts.js";

/** What a vhost PUT must repeat so it does not wipe the vhost's metadata. */
function metadata(v) {
  const out = { description: vhostDescription(v), tags: tagList(vhostTags(v)).join(",") };
  if (v.default_queue_type && v.default_queue_type !== "undefined") out.default_queue_type = v.default_queue_type;
  return out;
}

function vhostFacts(v) {
  const state = Object.entries(v.cluster_state ?? {})
    .map(([node, s]) => `${s} on ${node}`)
    .join(", ");
  return facts([
    ["Description", vhostDescription(v) || muted("–")],
    ["Tags", badges(vhostTags(v))],
    ["Default queue type", v.default_queue_type ?? ""],
    ["Tracing", v.tracing ? "On" : "Off"],
    state ? ["State", state] : null,
    ["Messages ready", count(v.messages_ready), true],
    ["Messages unacked", count(v.messages_unacknowledged), true],
    ["Messages total", count(v.messages), true],
    v.message_stats ? ["Publish rate", rate(v, "publish"), true] : null,
    v.message_stats ? ["Deliver / get rate", rate(v, "deliver_get"), true] : null,
    v.recv_oct !== undefined ? ["Data received", bytes(v.recv_oct), true] : null,
    v.send_oct !== undefined ? ["Data sent", bytes(v.send_oct), true] : null,
  ]);
}

export async function vhost(view, name) {
  const opened = await openPage(view, SIDES.vhost, name);
  if (!opened) return;
  let current = opened.current;
  const users = await userNames();

  const overview = part("vhost-facts");
  const tracing = tracingSwitch(name, () => current, () => refreshVhost());
  async function refreshVhost() {
    current = await call(path("vhosts", name));
    tracing.show(current);
    overview.show(vhostFacts(current));
  }

  const permissions = permissionsPanel(view, SIDES.vhost, name, { names: users });
  const topics = topicPermissionsPanel(view, SIDES.vhost, name, { names: users });
  const limits = limitsPanel(view, SIDES.vhost, name);

  view.root.append(
    h("div", { class: "grid" }, [
      section("Overview", [overview.node, tracing.node]),
      section("Update this virtual host", [updateForm(name, () => current, refreshVhost)]),
    ]),
    permissions.node,
    topics.node,
    limits.node,
    deleteSection(SIDES.vhost, name, "All its queues, exchanges, messages and permissions go with it."),
  );

  await Promise.all([live(view, overview, refreshVhost), permissions.poll(), topics.poll(), limits.poll()]);
}

/** The tracing switch: a PUT of the vhost with its metadata and the new state. */
function tracingSwitch(name, current, refresh) {
  const box = h("input", { type: "checkbox", id: "vhost-tracing", role: "switch", checked: !!current().tracing });
  const status = statusLine({}, "span");
  box.addEventListener("change", async () => {
    box.disabled = true;
    status.say();
    try {
      await call(path("vhosts", name), { method: "PUT", body: { ...metadata(current()), tracing: box.checked } });
      status.say(box.checked ? "Tracing on." : "Tracing off.");
      await refresh();
    } catch (e) {
      if (e instanceof Unauthorized) throw e;
      box.checked = !box.checked;
      status.fail(e);
    } finally {
      box.disabled = false;
    }
  });
  return {
    node: h("div", { class: "switch" }, [
      h("label", { class: "check" }, [box, h("span", { text: "Trace messages (to amq.rabbitmq.trace)" })]),
      status.node,
    ]),
    /** Shows the vhost's state, unless a change is on its way. */
    show(v) {
      if (!box.disabled) box.checked = !!v.tracing;
    },
  };
}

/** The form that updates a vhost's description, tags and default queue type. */
function updateForm(name, current, refresh) {
  const v0 = current();
  const queueType = QUEUE_TYPES.some(([t]) => t === v0.default_queue_type) ? v0.default_queue_type : "";
  return form(
    { class: "stack", id: "update-vhost" },
    [
      field("Description", input("description", { id: "update-vhost-description", value: vhostDescription(v0) })),
      field("Tags", input("tags", { id: "update-vhost-tags", value: tagList(vhostTags(v0)).join(", ") }), "Comma-separated"),
      field(
        "Default queue type",
        select("default_queue_type", [["", "(not set)"], ...QUEUE_TYPES], queueType, { id: "update-vhost-queue-type" }),
      ),
      h("div", { class: "actions" }, [h("button", { type: "submit", text: "Update virtual host" })]),
    ],
    async (v) => {
      const body = { description: v.description, tags: cleanTags(v.tags), tracing: !!current().tracing };
      if (v.default_queue_type) body.default_queue_type = v.default_queue_type;
      await call(path("vhosts", name), { method: "PUT", body });
      await refresh();
    },
    "Virtual host updated.",
  );
}

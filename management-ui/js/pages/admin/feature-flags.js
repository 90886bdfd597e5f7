// The feature flags: each with its state, and a button that enables a disabled one (for good:
// a feature flag cannot be disabled again).

import { path, Unauthorized } from "../../api.js";
import { button, h, section } from "../../dom.js";
import { staticTable } from "../../table.js";
import { call, capitalise, live, part, start } from "./common.js";

export async function featureFlags(view) {
  start(view, "feature-flags", "Feature flags");
  const flags = part("feature-flags-box");
  view.root.append(section("All feature flags", [flags.node]));

  /** A flag's state; a disabled one with its Enable button. */
  function state(f) {
    if (f.state !== "disabled") return h("span", { class: f.state === "enabled" ? "state-ok" : "", text: capitalise(f.state) });
    const enable = async (event) => {
      if (!window.confirm(`Enable feature flag ${f.name}? It cannot be disabled again.`)) return;
      event.target.disabled = true;
      try {
        await call(path("feature-flags", f.name, "enable"), { method: "PUT", body: {} });
        await refresh();
      } catch (e) {
        if (e instanceof Unauthorized) throw e;
        flags.fail(e);
        event.target.disabled = false;
      }
    };
    return h("span", { class: "inline-actions" }, [
      h("span", { class: "state-off", text: "Disabled" }),
      button("Enable", enable, { class: "small", "aria-label": `Enable ${f.name}` }),
    ]);
  }

  const columns = [
    { label: "Name", value: (f) => (f.doc_url ? h("a", { href: f.doc_url, text: f.name, rel: "noreferrer" }) : f.name) },
    { label: "State", value: state },
    { label: "Stability", value: (f) => capitalise(f.stability) },
    { label: "Description", value: (f) => f.desc ?? f.description ?? "" },
    { label: "Provided by", value: (f) => f.provided_by ?? "" },
  ];

  async function refresh() {
    const list = await call("/feature-flags");
    list.sort((a, b) => a.name.localeCompare(b.name));
    flags.show(staticTable(columns, list, "No feature flags.", "feature-flags-table"));
  }

  await live(view, flags, refresh);
}

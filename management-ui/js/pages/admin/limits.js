// The limits page: every vhost's and every user's limits, each with a form that sets one.

import { vhostNames } from "../../api.js";
import { h, section } from "../../dom.js";
import { call, live, part, refuse, start, userNames, whoami } from "./common.js";
import { limitForm, limitRows, limitsTable } from "./permissions.js";
import { SIDES } from "./sides.js";

/** The limits of all users or all vhosts (`side`), and the form; `names` to pick from. */
function allLimits(view, side, names) {
  const list = part(`${side.key}-limits-box`);
  async function refresh() {
    list.show(limitsTable(side, limitRows(side, await call(`/${side.key}-limits`)), refresh, true));
  }
  return {
    list: section(`${side.label} limits`, [list.node]),
    form: section(`Set / update a ${side.noun} limit`, [limitForm(side, { names, after: refresh })]),
    poll: () => live(view, list, refresh),
  };
}

export async function limits(view) {
  start(view, "limits", "Limits");
  const me = await whoami();
  if (refuse(view, me)) return;
  const [vhosts, users] = await Promise.all([vhostNames(), userNames()]);
  const vhost = allLimits(view, SIDES.vhost, vhosts);
  const user = allLimits(view, SIDES.user, users);
  view.root.append(vhost.list, user.list, h("div", { class: "grid" }, [vhost.form, user.form]));
  await Promise.all([vhost.poll(), user.poll()]);
}

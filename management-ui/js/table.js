// Lists as the API pages them: the server filters by name (a regular expression when asked),
// sorts and cuts pages, so a list of 10,000 queues costs one page's rows. A list keeps its
// filter, sort and page in the location's query, so a reload or a shared link shows the same.

import { api, withQuery } from "./api.js";
import { h } from "./dom.js";
import { count, perSecond } from "./format.js";

const PAGE_SIZES = [20, 50, 100, 500];

/**
 * A paged, sortable, filterable table of an API list.
 * columns: [{ label, sort (API sort key), num (right-aligned), value(item) → text or Node }]
 * Returns { node, refresh } — `refresh` reloads the current page (polling calls it).
 */
export function pagedTable({ path, columns, empty = "Nothing here yet.", id, defaultSort = "name" }) {
  const state = {
    page: 1,
    pageSize: 100,
    name: "",
    regex: false,
    sort: defaultSort,
    reverse: false,
  };
  const filter = h("input", {
    type: "search",
    placeholder: "Filter by name",
    "aria-label": "Filter by name",
    class: "filter",
  });
  const regex = h("input", { type: "checkbox", "aria-label": "Regular expression" });
  const sizes = h(
    "select",
    { "aria-label": "Rows per page" },
    PAGE_SIZES.map((n) => h("option", { value: n, text: `${n} per page`, selected: n === state.pageSize })),
  );
  const summary = h("span", { class: "summary", role: "status" });
  const pager = h("span", { class: "pager" });
  const error = h("p", { class: "error", role: "alert" });
  const head = h("thead");
  const body = h("tbody");
  const table = h("table", { class: "list", id }, [head, body]);

  function renderHead() {
    head.replaceChildren(
      h(
        "tr",
        {},
        columns.map((c) => {
          if (!c.sort) return h("th", { class: c.num ? "num" : undefined, scope: "col", text: c.label });
          const active = state.sort === c.sort;
          const arrow = active ? (state.reverse ? " ▼" : " ▲") : "";
          return h(
            "th",
            {
              class: c.num ? "num" : undefined,
              scope: "col",
              "aria-sort": active ? (state.reverse ? "descending" : "ascending") : undefined,
            },
            [
              h("button", {
                type: "button",
                class: "sort",
                text: c.label + arrow,
                onclick: () => {
                  state.reverse = active ? !state.reverse : false;
                  state.sort = c.sort;
                  state.page = 1;
                  refresh();
                },
              }),
            ],
          );
        }),
      ),
    );
  }

  function renderPager(result) {
    const pages = Math.max(result.page_count ?? 1, 1);
    const go = (p) => () => {
      state.page = p;
      refresh();
    };
    pager.replaceChildren(
      h("button", { type: "button", text: "‹ Previous", disabled: state.page <= 1, onclick: go(state.page - 1) }),
      h("span", { text: ` Page ${count(state.page)} of ${count(pages)} ` }),
      h("button", { type: "button", text: "Next ›", disabled: state.page >= pages, onclick: go(state.page + 1) }),
    );
    const shown = result.filtered_count ?? result.item_count ?? 0;
    const total = result.total_count ?? shown;
    summary.textContent =
      shown === total ? `${count(total)} in all` : `${count(shown)} of ${count(total)} match`;
  }

  let inFlight = null;
  async function refresh() {
    renderHead();
    const query = withQuery(path, {
      page: state.page,
      page_size: state.pageSize,
      name: state.name,
      use_regex: state.regex ? "true" : undefined,
      sort: state.sort,
      sort_reverse: state.reverse ? "true" : undefined,
    });
    const request = api(query);
    inFlight = request;
    let result;
    try {
      result = await request;
    } catch (e) {
      if (inFlight !== request) return;
      // The list shrank under the page shown: start again from the first.
      if (state.page > 1 && /out of range/i.test(e.message)) {
        state.page = 1;
        return refresh();
      }
      error.textContent = e.message;
      throw e;
    }
    if (inFlight !== request) return; // a newer request answers for the table
    error.textContent = "";
    body.replaceChildren(...rows(columns, result.items ?? [], empty));
    renderPager(result);
  }

  let typing = null;
  filter.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => {
      state.name = filter.value;
      state.page = 1;
      refresh().catch(() => {});
    }, 250);
  });
  regex.addEventListener("change", () => {
    state.regex = regex.checked;
    state.page = 1;
    refresh().catch(() => {});
  });
  sizes.addEventListener("change", () => {
    state.pageSize = Number(sizes.value);
    state.page = 1;
    refresh().catch(() => {});
  });

  const controls = h("div", { class: "controls" }, [
    filter,
    h("label", { class: "check" }, [regex, h("span", { text: "Regex" })]),
    sizes,
    summary,
    pager,
  ]);
  const node = h("div", { class: "paged" }, [controls, error, h("div", { class: "scroll" }, [table])]);
  return { node, refresh };
}

/** A column of a message rate (`message_stats.<key>_details.rate`) the API can sort by. */
export function rateColumn(label, key) {
  return {
    label,
    sort: `message_stats.${key}_details.rate`,
    num: true,
    value: (item) => perSecond(item.message_stats?.[`${key}_details`]?.rate),
  };
}

/** A table body's rows: one per item, or one that says `empty`. */
function rows(columns, items, empty) {
  if (!items.length) return [h("tr", {}, [h("td", { colspan: columns.length, class: "empty", text: empty })])];
  return items.map((item) =>
    h(
      "tr",
      {},
      columns.map((c) => {
        const v = c.value(item);
        return h("td", { class: c.num ? "num" : undefined }, [v instanceof Node ? v : String(v ?? "")]);
      }),
    ),
  );
}

/** A plain table of items already fetched (small lists: a queue's consumers, bindings);
 *  `id` names it for the page's CSS and tests. */
export function staticTable(columns, items, empty = "None.", id) {
  return h("table", { class: "list", id }, [
    h("thead", {}, [h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : undefined, scope: "col", text: c.label })))]),
    h("tbody", {}, rows(columns, items, empty)),
  ]);
}

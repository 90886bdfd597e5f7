// Charts of the API's sample lists (`<stat>_details.samples`, newest first, asked for with
// `msg_rates_age`/`lengths_age` and their `_incr`), drawn with the vendored uPlot. Counters
// become rates between consecutive samples; lengths are drawn as they are.

import uPlot from "../vendor/uPlot.esm.js";
import { h } from "./dom.js";
import { points } from "./samples.js";

export { samplesQuery } from "./samples.js";

/** The series of a "Queued messages" chart (the overview's totals, a queue's own counts). */
export const QUEUED = [
  { label: "Ready", key: "messages_ready" },
  { label: "Unacked", key: "messages_unacknowledged" },
  { label: "Total", key: "messages" },
];

function color(i) {
  const style = getComputedStyle(document.documentElement);
  return style.getPropertyValue(`--chart-${(i % 6) + 1}`).trim() || "#2f6fbf";
}

/**
 * A chart of several series from one stats object.
 * series: [{ label, key }] where `stats[key + "_details"].samples` holds the samples.
 * Returns { node, update(stats) }.
 */
export function chart({ title, series, rate = false, id }) {
  const holder = h("div", { class: "chart", id, role: "img", "aria-label": title });
  const node = h("section", { class: "panel" }, [h("h3", { text: title }), holder]);
  let plot = null;

  function data(stats) {
    const columns = series.map((s) => points(stats?.[`${s.key}_details`]?.samples, rate));
    // One time axis: the longest series'; others are aligned to it by position from the end.
    const times = columns.reduce((a, c) => (c[0].length > a.length ? c[0] : a), []);
    return [
      times,
      ...columns.map(([t, v]) => {
        const pad = times.length - t.length;
        return [...Array(pad).fill(null), ...v];
      }),
    ];
  }

  function create(d) {
    const width = Math.max(holder.clientWidth, 280);
    plot = new uPlot(
      {
        width,
        height: 200,
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(max, 1)] } },
        axes: [
          { stroke: getComputedStyle(document.body).color, grid: { stroke: "rgba(128,128,128,0.15)" } },
          {
            stroke: getComputedStyle(document.body).color,
            grid: { stroke: "rgba(128,128,128,0.15)" },
            size: 60,
            values: (_u, ticks) => ticks.map((v) => (rate ? `${fmt(v)}/s` : fmt(v))),
          },
        ],
        series: [
          {},
          ...series.map((s, i) => ({ label: s.label, stroke: color(i), width: 2, spanGaps: true })),
        ],
      },
      d,
      holder,
    );
  }

  const resize = new ResizeObserver(() => {
    if (plot) plot.setSize({ width: Math.max(holder.clientWidth, 280), height: 200 });
  });
  resize.observe(holder);

  return {
    node,
    update(stats) {
      const d = data(stats);
      if (plot) plot.setData(d);
      else if (holder.isConnected) create(d);
      else requestAnimationFrame(() => (plot ? plot.setData(d) : create(d)));
    },
  };
}

const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });
function fmt(v) {
  return compact.format(v);
}

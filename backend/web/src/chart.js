// A small SVG step chart of cumulative amounts over time (no chart library needed).
import { formatUnits } from "viem";
import { clock } from "./fmt.js";
import { t } from "./i18n.js";
import { h, svg } from "./ui.js";

/**
 * @param {Array<{name: string, color: string, points: Array<{t: number, amount: bigint}>}>} series
 *     Points are increments; the chart draws their running totals.
 * @param {{decimals?: number, unit?: string}} opts
 */
export function cumulativeChart(series, { decimals = 18, unit = "ETH", title = "" } = {}) {
  const W = 640;
  const H = 220;
  const pad = { l: 56, r: 14, t: 12, b: 28 };
  const all = series.flatMap((s) => s.points);
  if (!all.length) return h("p", { class: "muted small", "data-test": "chart-empty" }, t("chart.empty"));
  const lines = series.map((s) => {
    let total = 0;
    const pts = [...s.points]
      .sort((a, b) => a.t - b.t)
      .map((p) => {
        total += Number(formatUnits(BigInt(p.amount), decimals));
        return { t: p.t, v: total };
      });
    return { ...s, pts };
  });
  let t0 = Math.min(...all.map((p) => p.t));
  let t1 = Math.max(...all.map((p) => p.t));
  if (t1 - t0 < 60) {
    t0 -= 30;
    t1 += 30;
  }
  const vmax = Math.max(...lines.flatMap((l) => l.pts.map((p) => p.v)), 1e-9) * 1.1;
  const x = (t) => pad.l + ((t - t0) / (t1 - t0)) * (W - pad.l - pad.r);
  const y = (v) => H - pad.b - (v / vmax) * (H - pad.t - pad.b);
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => f * vmax);
  const fmtV = (v) => (v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(2) : v.toPrecision(2));
  const fmtT = clock;
  const chart = svg(
    "svg",
    {
      viewBox: `0 0 ${W} ${H}`,
      class: "chart",
      role: "img",
      "aria-label": title || t("chart.label"),
      "data-test": "sales-chart",
    },
    ticks.map((v) => [
      svg("line", {
        x1: pad.l,
        x2: W - pad.r,
        y1: y(v),
        y2: y(v),
        class: "axis",
        "stroke-dasharray": v ? "3 4" : null,
      }),
      svg("text", { x: pad.l - 6, y: y(v) + 4, "text-anchor": "end" }, fmtV(v)),
    ]),
    svg("text", { x: pad.l, y: H - 8 }, fmtT(t0)),
    svg("text", { x: W - pad.r, y: H - 8, "text-anchor": "end" }, fmtT(t1)),
    lines.map((l) => {
      if (!l.pts.length) return null;
      let d = `M ${x(t0)} ${y(0)} L ${x(l.pts[0].t)} ${y(0)}`;
      let prev = 0;
      for (const p of l.pts) {
        d += ` L ${x(p.t)} ${y(prev)} L ${x(p.t)} ${y(p.v)}`;
        prev = p.v;
      }
      d += ` L ${x(t1)} ${y(prev)}`;
      return [
        svg("path", { d, fill: "none", stroke: l.color, "stroke-width": 2.2, "stroke-linejoin": "round" }),
        l.pts.map((p) => svg("circle", { cx: x(p.t), cy: y(p.v), r: 3, fill: l.color })),
      ];
    }),
  );
  return h(
    "div",
    null,
    chart,
    h(
      "div",
      { class: "legend" },
      lines.map((l) =>
        h(
          "span",
          null,
          h("i", { style: { background: l.color } }),
          t("chart.legend", { name: l.name, amount: fmtV(l.pts.at(-1)?.v ?? 0), unit }),
        ),
      ),
    ),
  );
}

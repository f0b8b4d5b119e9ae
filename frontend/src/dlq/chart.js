// The two header charts as inline SVG built with DOM calls (createElementNS, setAttribute with numbers and
// our own colour constants, text nodes for every label) — nothing from the server is parsed as markup.

import { sparklinePoints } from "./stats.js";
import { count } from "../format.js";

const SVG_NS = "http://www.w3.org/2000/svg";

function svgElement(doc, name, attributes = {}) {
  const element = doc.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  return element;
}

const ROW_HEIGHT = 22;
const LABEL_WIDTH = 150;
const COUNT_WIDTH = 56;

/**
 * Horizontal bars, one per reason (from stats.reasonBars). `active` is the reason currently filtered on;
 * onPick(reason) is called when a bar is clicked or activated with Enter/Space.
 */
export function renderReasonChart(container, bars, { active = "", onPick, width = 460 }) {
  const doc = container.ownerDocument;
  if (bars.length === 0) {
    const empty = doc.createElement("p");
    empty.className = "empty";
    empty.textContent = "No rejected pings.";
    container.replaceChildren(empty);
    return;
  }
  const barSpace = width - LABEL_WIDTH - COUNT_WIDTH;
  const svg = svgElement(doc, "svg", {
    class: "reason-bars",
    viewBox: `0 0 ${width} ${bars.length * ROW_HEIGHT}`,
    width,
    height: bars.length * ROW_HEIGHT,
    role: "list",
  });
  bars.forEach((bar, index) => {
    const y = index * ROW_HEIGHT;
    const group = svgElement(doc, "g", { class: "reason-bar", role: "listitem", tabindex: 0 });
    if (active === bar.reason) group.classList.add("active");
    const title = svgElement(doc, "title");
    title.textContent = `${bar.label}: ${count(bar.count)} — click to ${active === bar.reason ? "clear the filter" : "filter"}`;
    const hit = svgElement(doc, "rect", { x: 0, y, width, height: ROW_HEIGHT, class: "hit" });
    const label = svgElement(doc, "text", { x: LABEL_WIDTH - 8, y: y + ROW_HEIGHT / 2, class: "label" });
    label.textContent = bar.label;
    const track = svgElement(doc, "rect", { x: LABEL_WIDTH, y: y + 4, width: barSpace, height: ROW_HEIGHT - 8, rx: 3, class: "track" });
    const fill = svgElement(doc, "rect", {
      x: LABEL_WIDTH,
      y: y + 4,
      width: Math.max(2, +(bar.fraction * barSpace).toFixed(1)),
      height: ROW_HEIGHT - 8,
      rx: 3,
      fill: bar.colour,
      class: "fill",
    });
    const value = svgElement(doc, "text", { x: width - 4, y: y + ROW_HEIGHT / 2, class: "value" });
    value.textContent = count(bar.count);
    group.append(title, hit, label, track, fill, value);
    group.addEventListener("click", () => onPick(bar.reason));
    group.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        onPick(bar.reason);
      }
    });
    svg.append(group);
  });
  container.replaceChildren(svg);
}

/** A sparkline of a dense per-minute series (stats.denseMinutes). */
export function renderSparkline(container, series, { width = 260, height = 44 } = {}) {
  const doc = container.ownerDocument;
  const svg = svgElement(doc, "svg", { class: "spark", viewBox: `0 0 ${width} ${height}`, width, height, "aria-hidden": "true" });
  const points = sparklinePoints(series, width, height);
  if (points) {
    const area = svgElement(doc, "polygon", { points: `0,${height} ${points} ${width},${height}`, class: "spark-area" });
    const line = svgElement(doc, "polyline", { points, class: "spark-line" });
    svg.append(area, line);
  } else {
    svg.append(svgElement(doc, "line", { x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5, class: "spark-line" }));
  }
  container.replaceChildren(svg);
}

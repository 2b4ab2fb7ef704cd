// Explorers of the HTML book (adamw_lab/book/web.py): sliders over a precomputed grid, redrawn with Plotly.
// Each <div class="adamw-explorer"> holds its numbers as JSON; nothing is fetched from the network.
(function () {
  "use strict";

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // The web font lies next to this script in _static (see web.py); Plotly measures text, so draw after it loads.
  const FONT_URL = new URL("adamw-explorer-font.woff", document.currentScript.src).href;
  const CSS = "@font-face{font-family:'AdamW Explorer CJK';src:url('" + FONT_URL + "') format('woff')}" +
    ".adamw-explorer-formula{overflow-x:auto;overflow-y:hidden}" +
    ".adamw-explorer{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;margin:1em 0}" +
    ".adamw-explorer-controls{font-family:'AdamW Explorer CJK',sans-serif}" +
    ".adamw-explorer-controls{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:.2em 1.5em}" +
    ".adamw-explorer-slider{display:flex;align-items:center;gap:.5em}.adamw-explorer-slider input{flex:1}" +
    ".adamw-explorer-symbol{min-width:2.2em;font-style:italic;font-weight:600}" +
    ".adamw-explorer-value,.adamw-explorer-readout output{min-width:4em;font-variant-numeric:tabular-nums;font-weight:600}";

  function init(root) {
    const spec = JSON.parse(root.querySelector("script.adamw-explorer-data").textContent);
    const note = root.querySelector(".adamw-explorer-note");
    if (note) note.remove();
    const controls = el("div", "adamw-explorer-controls");
    const plot = el("div", "adamw-explorer-plot");
    root.append(controls, plot);

    const inputs = spec.sliders.map(function (s) {
      const row = el("label", "adamw-explorer-slider");
      const input = el("input");
      input.type = "range";
      input.min = 0;
      input.max = s.values.length - 1;
      input.step = 1;
      input.value = s.default;
      input.dataset.name = s.name;
      input.setAttribute("aria-label", s.label);
      const value = el("output", "adamw-explorer-value");
      row.append(el("span", "adamw-explorer-symbol", s.label), input, value);
      controls.append(row);
      return { input: input, value: value, spec: s };
    });
    const shown = spec.readouts.map(function (r) {
      const row = el("div", "adamw-explorer-readout");
      const value = el("output");
      value.dataset.fn = r.fn;
      row.append(el("span", "adamw-explorer-label", r.label + " = "), value);
      controls.append(row);
      return value;
    });

    const layout = JSON.parse(JSON.stringify(spec.layout));
    layout.font.family = "'AdamW Explorer CJK', sans-serif";
    let draws = 0;
    function update() {
      let frame = 0;
      inputs.forEach(function (c) {
        const i = Number(c.input.value);
        frame = frame * c.spec.values.length + i;
        c.value.textContent = c.spec.text[i];
      });
      const traces = spec.traces.map(function (t, k) {
        const xy = spec.frames[frame][k];
        return Object.assign({}, t, { x: spec.arrays[xy[0]], y: spec.arrays[xy[1]] });
      });
      shown.forEach(function (out, k) {
        out.textContent = Number(spec.readouts[k].values[frame].toPrecision(4)).toString();
      });
      Plotly.react(plot, traces, layout, { displayModeBar: false, responsive: true }).then(function () {
        draws += 1;
        root.dataset.draws = String(draws);
      });
    }
    inputs.forEach(function (c) { c.input.addEventListener("input", update); });
    update();
  }

  function start() {
    document.head.append(el("style", null, CSS));
    const roots = document.querySelectorAll(".adamw-explorer");
    const loaded = document.fonts ? document.fonts.load("13px 'AdamW Explorer CJK'", "权重") : Promise.resolve();
    loaded.catch(function () {}).then(function () { roots.forEach(init); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

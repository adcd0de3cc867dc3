/* Draws every chart of a page: each <div class="chart" data-spec="spec-x"> gets the Vega-Lite spec
   held in <script type="application/json" id="spec-x"> (no inline script: the CSP forbids it).
   vega-embed's own styles and vega-tooltip's default style are inline <style> elements, which the
   CSP refuses too: both are switched off here and their rules live in console.css. */
(function () {
  "use strict";
  function draw() {
    document.querySelectorAll("[data-spec]").forEach(function (target) {
      var holder = document.getElementById(target.getAttribute("data-spec"));
      if (!holder) { return; }
      var spec = JSON.parse(holder.textContent);
      vegaEmbed(target, spec, {
        actions: false,
        renderer: "svg",
        defaultStyle: false,
        tooltip: {disableDefaultStyle: true}
      })
        .then(function () { target.setAttribute("data-drawn", "true"); })
        .catch(function (error) { target.setAttribute("data-error", String(error)); });
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();

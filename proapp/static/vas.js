/* Visual analogue scale: turns each 0-100 number field into a horizontal line that is operated by touch,
   mouse or keyboard and announced to screen readers as a slider. No marker until the patient touches the
   line. Without JavaScript the number field stays: this file only enhances. */
(function () {
  "use strict";
  function enhance(box) {
    var input = box.querySelector("input.vas-number");
    if (!input) return;
    var label = document.getElementById("l-" + input.name);
    var low = box.getAttribute("data-low"), high = box.getAttribute("data-high");
    var line = document.createElement("div");
    line.className = "vas-line";
    line.setAttribute("role", "slider");
    line.setAttribute("tabindex", "0");
    line.setAttribute("aria-valuemin", "0");
    line.setAttribute("aria-valuemax", "100");
    if (label) line.setAttribute("aria-labelledby", label.id);
    var marker = document.createElement("span");
    marker.className = "vas-marker";
    line.appendChild(marker);
    box.insertBefore(line, input);
    box.classList.add("vas-js");
    input.type = "hidden";
    /* Say which control gave the value: the line (the number box is gone). */
    var control = box.querySelector('input[name="control-' + input.name + '"]');
    if (control) control.value = "line";
    var hint = document.getElementById("hint-" + input.name);
    if (hint) hint.hidden = true;
    /* The error said "mark the line or type a number": the number box is gone, so say the line alone. */
    var error = document.getElementById("err-" + input.name);
    if (error && box.getAttribute("data-error")) {
      error.textContent = box.getAttribute("data-error");
      var listed = document.querySelector('#error-summary a[href="#q-' + input.name + '"]');
      if (listed) listed.textContent = box.getAttribute("data-error");
    }
    function set(v) {
      if (error) error.hidden = true;
      v = Math.max(0, Math.min(100, Math.round(v)));
      input.value = String(v);
      marker.style.left = v + "%";
      line.classList.add("marked");
      line.setAttribute("aria-valuenow", String(v));
      line.setAttribute("aria-valuetext", v + " (0 = " + low + ", 100 = " + high + ")");
    }
    if (input.value !== "") set(parseInt(input.value, 10));
    else line.setAttribute("aria-valuetext", box.getAttribute("data-unmarked") || "");
    function fromPointer(e) {
      var r = line.getBoundingClientRect();
      set(((e.clientX - r.left) / r.width) * 100);
    }
    var dragging = false;
    line.addEventListener("pointerdown", function (e) {
      dragging = true;
      if (line.setPointerCapture) line.setPointerCapture(e.pointerId);
      fromPointer(e);
      line.focus();
      e.preventDefault();
    });
    line.addEventListener("pointermove", function (e) { if (dragging) fromPointer(e); });
    line.addEventListener("pointerup", function () { dragging = false; });
    line.addEventListener("pointercancel", function () { dragging = false; });
    line.addEventListener("keydown", function (e) {
      var v = input.value === "" ? 50 : parseInt(input.value, 10), step = null;
      switch (e.key) {
        case "ArrowRight": case "ArrowUp": step = input.value === "" ? 0 : v + 1; break;
        case "ArrowLeft": case "ArrowDown": step = input.value === "" ? 0 : v - 1; break;
        case "PageUp": step = v + 10; break;
        case "PageDown": step = v - 10; break;
        case "Home": step = 0; break;
        case "End": step = 100; break;
      }
      if (step !== null) {
        if (input.value === "" && (e.key.indexOf("Arrow") === 0)) step = 50;
        set(step);
        e.preventDefault();
      }
    });
  }
  var boxes = document.querySelectorAll(".vas");
  for (var i = 0; i < boxes.length; i++) enhance(boxes[i]);
  /* The instructions spoke of the number box; now that the line is drawn, they speak of the line. */
  var told = document.querySelectorAll(".instructions [data-line]");
  for (var k = 0; boxes.length && k < told.length; k++) told[k].textContent = told[k].getAttribute("data-line");
  /* After an error, the summary at the top takes the focus: a screen reader reads it, its links lead to the fields. */
  var summary = document.getElementById("error-summary");
  if (summary) summary.focus();
  /* One tap sends once: a second tap while the page is leaving does nothing. */
  var forms = document.querySelectorAll("form[data-once]");
  for (var j = 0; j < forms.length; j++) {
    forms[j].addEventListener("submit", function (e) {
      if (this.getAttribute("data-sent")) { e.preventDefault(); return; }
      this.setAttribute("data-sent", "1");
    });
  }
})();

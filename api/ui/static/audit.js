// The audit page's slider shows the position it will ask for as it moves.
const slider = document.getElementById("at-slider");
const output = document.getElementById("at-output");
if (slider && output) {
  slider.addEventListener("input", () => { output.textContent = slider.value; });
}

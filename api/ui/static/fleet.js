// The fleet matrix, live: every event that can change a cell (targets, deployments, rollouts)
// asks for the matrix again at that event's position and patches the cells that changed in place,
// so focus and scroll stay where they are. A matrix of another shape (a deployment or target came
// or went) replaces the old one.
import { coalesce, follow, fragment } from "./live.js";

const status = document.getElementById("live");
let matrix = document.getElementById("matrix");

function patch(fresh) {
  if (fresh.dataset.shape !== matrix.dataset.shape) {
    matrix.replaceWith(fresh);
    matrix = fresh;
    return;
  }
  // Cells, headers (revision, pause, counts) and the summary: whatever differs is replaced.
  const parts = "thead th, tbody th .counts, td, .summary";
  const old = matrix.querySelectorAll(parts);
  const now = fresh.querySelectorAll(parts);
  if (old.length !== now.length) {
    matrix.replaceWith(fresh);
    matrix = fresh;
    return;
  }
  for (let i = 0; i < old.length; i += 1) {
    const a = old[i];
    const b = now[i];
    if (a.innerHTML !== b.innerHTML) a.innerHTML = b.innerHTML;
    if (a.className !== b.className) a.className = b.className;
    if (a.title !== b.title) a.title = b.title;
  }
  matrix.dataset.position = fresh.dataset.position;
}

let wanted = Number(matrix.dataset.position);
const refresh = coalesce(async () => {
  const query = new URLSearchParams(window.location.search);
  query.set("min_position", String(wanted));
  const content = await fragment(`/fleet/matrix?${query}`);
  const fresh = content && content.getElementById("matrix");
  if (fresh) patch(fresh);
});

follow({
  after: wanted,
  types: matrix.dataset.types.split(","),
  categories: matrix.dataset.categories.split(","),
  status,
  onEvent: ({ position }) => {
    if (position > wanted) wanted = position;
    refresh();
  },
});

// The deployment page, live: every event of this deployment, its rollout, a target or a freeze asks
// for the page again at that event's position and replaces its live parts (current revision,
// actions, waves and targets, latest events). A part the user is working in (focus inside it, or an
// open disclosure) is left alone until the next event after they leave it.
import { coalesce, follow, fragment } from "./live.js";

const root = document.getElementById("deployment");
const name = root.dataset.name;
let wanted = Number(root.dataset.position);

function busy(part) {
  return part.contains(document.activeElement) || part.querySelector("details[open]") !== null;
}

const refresh = coalesce(async () => {
  const query = new URLSearchParams(window.location.search);
  query.delete("recorded");
  query.set("min_position", String(wanted));
  const content = await fragment(`/deployments/${encodeURIComponent(name)}?${query}`);
  if (!content) return;
  for (const part of document.querySelectorAll(".live-part")) {
    const fresh = content.getElementById(part.id);
    if (fresh && !busy(part) && part.innerHTML !== fresh.innerHTML) part.innerHTML = fresh.innerHTML;
  }
}, 150);

follow({
  after: wanted,
  types: root.dataset.types.split(","),
  categories: ["deployment", "rollout", "target", "freeze"],
  status: document.getElementById("live"),
  onEvent: ({ position, event }) => {
    const data = event && event.data;
    if (data && typeof data.deployment === "string" && data.deployment !== name) return;
    if (position > wanted) wanted = position;
    refresh();
  },
});

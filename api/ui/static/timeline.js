// The timeline, live: each event of the feed fetches the rows after the newest one shown (with
// the page's filters, so the server decides what matches) and puts them on top.
import { coalesce, follow, fragment } from "./live.js";

const box = document.getElementById("timeline");
const list = () => document.getElementById("rows");
let newest = Number(box.dataset.head);

const refresh = coalesce(async () => {
  const query = new URLSearchParams(window.location.search);
  query.set("after", String(newest));
  const content = await fragment(`/timeline/rows?${query}`);
  const rows = content && content.getElementById("rows");
  if (!rows || !rows.children.length) return;
  const top = list();
  const empty = top.querySelector(".empty");
  if (empty) empty.remove();
  const items = Array.from(rows.children);
  for (const item of items.reverse()) {
    item.classList.add("fresh");
    top.prepend(item);
    const at = Number(item.dataset.position);
    if (at > newest) newest = at;
  }
});

follow({
  after: newest,
  types: box.dataset.types.split(","),
  status: document.getElementById("live"),
  onEvent: () => refresh(),
});

// The live feed (GET /v1/feed/live, Server-Sent Events) for a page: one EventSource from a known
// position, named events of every type in `types`, reconnecting after an HTTP error (a browser's
// EventSource gives up on those by itself) from the last position seen. No polling.

export function follow({ after, types, categories = [], onEvent, status }) {
  let position = after;
  let source = null;
  const say = (text) => { if (status) status.textContent = text; };

  const open = () => {
    const query = new URLSearchParams({ after: String(position) });
    if (categories.length) query.set("category", categories.join(","));
    source = new EventSource(`/v1/feed/live?${query}`);
    source.onopen = () => say("live");
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        say("reconnecting");
        setTimeout(open, 3000);
      } else {
        say("reconnecting");
      }
    };
    for (const type of types) {
      source.addEventListener(type, (message) => {
        const at = Number(message.lastEventId);
        if (at > position) position = at;
        let data = null;
        try { data = JSON.parse(message.data); } catch { data = null; }
        onEvent({ type, position: at, event: data });
      });
    }
  };
  open();
  return { position: () => position, close: () => source && source.close() };
}

// Calls `run` once for a burst of calls, at most one run at a time; a call during a run schedules
// one more run after it.
export function coalesce(run, delay = 50) {
  let timer = null;
  let running = false;
  let again = false;
  const fire = async () => {
    timer = null;
    if (running) { again = true; return; }
    running = true;
    try { await run(); } finally {
      running = false;
      if (again) { again = false; schedule(); }
    }
  };
  const schedule = () => { if (!timer) timer = setTimeout(fire, delay); };
  return schedule;
}

// Fetches a fragment of this site as HTML; a sign-in redirect reloads the page (to sign in).
export async function fragment(url) {
  const response = await fetch(url, { headers: { Accept: "text/html" }, credentials: "same-origin" });
  if (response.redirected && new URL(response.url).pathname === "/signin") {
    window.location.assign(response.url);
    return null;
  }
  if (!response.ok) return null;
  const template = document.createElement("template");
  template.innerHTML = await response.text();
  return template.content;
}

// The page runs inside Airflow's frame, sandboxed without top navigation and without dialogs: a link into Airflow
// moves Airflow's own router (same origin), and an action asks for confirmation on the page itself.

function inAirflowFrame() {
  try {
    return window.top !== window && window.top.location.origin === window.location.origin;
  } catch {
    return false;
  }
}

// Links marked data-airflow-link open in Airflow's window: a history entry and a popstate its router follows.
document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-airflow-link]");
  if (!link || !inAirflowFrame() || event.ctrlKey || event.metaKey || event.shiftKey) return;
  event.preventDefault();
  window.top.history.pushState(null, "", link.getAttribute("href"));
  window.top.dispatchEvent(new PopStateEvent("popstate"));
});

function showResult(text) {
  document.querySelector("[data-testid=action-result]").textContent = text;
}

async function act(button) {
  const label = button.dataset.label;
  try {
    const response = await fetch(button.dataset.url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{}",
      credentials: "same-origin",
    });
    const body = await response.json().catch(() => ({}));
    if (response.ok) {
      showResult(`${label}: job ${body.job.id} is now ${body.job.status}.`);
      setTimeout(() => window.location.reload(), 1500);
    } else {
      showResult(`${label} refused (${response.status}): ${body.detail ?? ""}`);
    }
  } catch (error) {
    showResult(`${label} failed: ${error}`);
  }
}

// Cancel, pause and resume: the button asks on the page (yes / no), then sends a JSON POST with Airflow's session.
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const bar = document.querySelector("[data-testid=confirm-bar]");
  bar.querySelector("[data-testid=confirm-text]").textContent =
    `${button.dataset.label} job ${button.dataset.job} on connection ${button.dataset.conn}?`;
  bar.hidden = false;
  bar.querySelector("[data-testid=confirm-yes]").onclick = () => {
    bar.hidden = true;
    act(button);
  };
  bar.querySelector("[data-testid=confirm-no]").onclick = () => {
    bar.hidden = true;
  };
});

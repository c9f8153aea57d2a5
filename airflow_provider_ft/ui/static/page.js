// Cancel, pause and resume buttons: a confirmation, then a JSON POST (same origin, Airflow's own session cookie).
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const what = `${button.dataset.label} job ${button.dataset.job} on connection ${button.dataset.conn}?`;
  if (!window.confirm(what)) return;
  button.disabled = true;
  const result = document.querySelector("[data-testid=action-result]");
  try {
    const response = await fetch(button.dataset.url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{}",
      credentials: "same-origin",
    });
    const body = await response.json().catch(() => ({}));
    if (response.ok) {
      result.textContent = `${button.dataset.label}: job ${body.job.id} is now ${body.job.status}.`;
      setTimeout(() => window.location.reload(), 1000);
    } else {
      result.textContent = `${button.dataset.label} refused (${response.status}): ${body.detail ?? ""}`;
      button.disabled = false;
    }
  } catch (error) {
    result.textContent = `${button.dataset.label} failed: ${error}`;
    button.disabled = false;
  }
});

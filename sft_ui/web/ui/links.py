"""The page's address holds the open tab and the selected job (`/?tab=jobs&job=<id>`): read when the page loads,
rewritten in the browser (history.replaceState, no reload) when either changes."""

from typing import Any

import gradio as gr

from sft_ui.manager import JobManager, NotFoundError

# The selected tab's id, read from the tab bar once the switch has been drawn (a change can come from a click or
# from a handler); the other parameters of the address are kept.
TAB_JS = """() => { setTimeout(() => {
  const tab = document.querySelector('[role="tab"][aria-selected="true"][data-tab-id]');
  if (!tab) return;
  const url = new URL(window.location.href);
  url.searchParams.set('tab', tab.dataset.tabId);
  window.history.replaceState(window.history.state, '', url);
}, 50); }"""
# The picked job into the address; returns the job's link for the copyable box.
JOB_JS = """(job) => {
  const url = new URL(window.location.href);
  if (job) { url.searchParams.set('job', job); } else { url.searchParams.delete('job'); }
  window.history.replaceState(window.history.state, '', url);
  if (!job) return '';
  const link = new URL(window.location.origin + window.location.pathname);
  link.searchParams.set('tab', 'jobs');
  link.searchParams.set('job', job);
  return link.toString();
}"""


def wire(tabs: gr.Tabs, job_pick: gr.Dropdown, link: gr.Textbox) -> None:
    """Keep the address in step with the open tab and the picked job, and show the job's link in `link`."""
    tabs.change(None, None, None, js=TAB_JS, api_visibility="private", queue=False)
    job_pick.change(None, job_pick, link, js=JOB_JS, api_visibility="private", queue=False)


def tab_ids(tabs: gr.Tabs) -> list[str]:
    """The ids of the tabs in `tabs`."""
    return [str(child.id) for child in tabs.children if isinstance(child, gr.Tab) and child.id is not None]


def opened(manager: JobManager, query: dict[str, str], tabs: list[str]) -> tuple[str | None, str | None, str]:
    """(tab to open, job to select, a message) for the address's `tab` and `job`; a job alone opens Jobs."""
    tab, job_id = query.get("tab") or None, query.get("job") or None
    message = ""
    if tab not in tabs:
        tab = None
    if job_id is not None:
        try:
            manager.get_job_status(job_id)
        except (NotFoundError, ValueError):
            message = f"The link's job {job_id} does not exist (it may have been deleted)."
            job_id = None
        tab = tab or "jobs"
    return tab, job_id, message


def query_of(request: gr.Request | None) -> dict[str, Any]:
    """The page address's query parameters (Gradio passes them with the page's load event)."""
    return dict(getattr(request, "query_params", None) or {})

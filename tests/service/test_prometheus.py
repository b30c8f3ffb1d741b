"""Operators see the service in Prometheus: the API's requests and queues, the workers' jobs, stages,
faces, model and webhooks — read from the real exporters before and after one job."""

from __future__ import annotations

from pathlib import Path

import httpx
from harness import Api, Stack, WebhookReceiver, lose_worker, wait_until
from prometheus_client.parser import text_string_to_metric_families

OUT = Path(__file__).resolve().parents[2] / "out" / "metrics"  # the last scrapes, for the excerpt in docs/operations.md


def _scrape(url: str, keep: str | None = None) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{url}/metrics", timeout=10).raise_for_status().text
    if keep:
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / f"{keep}.txt").write_text(text)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_job_moves_the_api_worker_and_webhook_metrics(stack: Stack, api: Api, receiver: WebhookReceiver,
                                                        portrait_jpeg: bytes) -> None:
    gpu, cpu = stack.procs["gpu"].url, stack.procs["cpu"].url
    before = {"api": _scrape(stack.api_url), "gpu": _scrape(gpu), "cpu": _scrape(cpu)}

    job = api.submit(portrait_jpeg, options='{"upscale": 1}', webhook_url=f"{receiver.url}/metrics-test").json()
    done = api.wait(job["id"])
    assert done["status"] == "succeeded", done
    wait_until(lambda: any(r.path == "/metrics-test" for r in receiver.received), 60, 0.3, "the webhook")
    after_gpu = _scrape(gpu, keep="worker-gpu")
    after_cpu = wait_until(lambda: (c := _scrape(cpu)) and _value(c, "portrait_webhook_deliveries_total",
                                                                   result="delivered") > _value(
        before["cpu"], "portrait_webhook_deliveries_total", result="delivered") and c, 30, 0.5, "delivery counted")
    after_api = _scrape(stack.api_url, keep="api")

    def moved(where: str, after: dict, name: str, by: float = 1, **labels: str) -> None:
        delta = _value(after, name, **labels) - _value(before[where], name, **labels)
        assert delta >= by, f"{where} {name}{labels} moved by {delta}"

    # API: the submit counted by route template and status, its latency observed; queues visible
    moved("api", after_api, "portrait_http_requests_total", method="POST", route="/v1/jobs", status="202")
    moved("api", after_api, "portrait_http_request_duration_seconds_count", method="POST", route="/v1/jobs")
    moved("api", after_api, "portrait_http_requests_total", method="GET", route="/v1/jobs/{job_id}", status="200")
    assert ("portrait_queue_depth", (("queue", "gpu"),)) in after_api
    # GPU worker (prefork: the child's samples reach the parent's exporter)
    moved("gpu", after_gpu, "portrait_jobs_total", outcome="succeeded", error_code="")
    for stage in ("decode", "detect", "align", "parse", "generate", "paste", "encode"):
        moved("gpu", after_gpu, "portrait_stage_seconds_count", stage=stage)
    moved("gpu", after_gpu, "portrait_job_seconds_count")
    moved("gpu", after_gpu, "portrait_faces_restored_total", by=len(done["faces"]) or 1)
    assert _value(after_gpu, "portrait_model_info", model_version=done["model_version"]) == 1
    assert sum(v for (n, _), v in after_gpu.items() if n == "portrait_jobs_in_flight") == 0
    # CPU worker: the webhook delivery
    moved("cpu", after_cpu, "portrait_webhook_deliveries_total", result="delivered")


def test_a_failed_job_is_counted_with_its_code(stack: Stack, api: Api, portrait_jpeg: bytes) -> None:
    gpu = stack.procs["gpu"].url
    before = _scrape(gpu)
    r = api.submit(portrait_jpeg[: len(portrait_jpeg) // 2], "half.jpg")  # the header passes the API's check
    assert r.status_code == 202, r.text
    failed = api.wait(r.json()["id"])
    assert (failed["status"], failed["error"]["code"]) == ("failed", "truncated_image")
    counted = [_value(s, "portrait_jobs_total", outcome="failed", error_code="truncated_image")
               for s in (before, _scrape(gpu))]
    assert counted[1] - counted[0] == 1, counted


def test_jobs_the_sweeper_takes_back_are_counted(stack: Stack, api: Api, portrait_jpeg: bytes) -> None:
    """A job whose worker died is requeued or, on its last allowed attempt, failed by the sweeper, never by a
    restore task: the sweeper's worker counts both, or the dashboard would never see lost workers and
    poison images."""
    cpu = stack.procs["cpu"].url
    jobs = [api.submit(portrait_jpeg, options='{"upscale": 1}').json() for _ in range(2)]
    for job in jobs:
        api.wait(job["id"])
    before = _scrape(cpu)
    lose_worker(jobs[0]["id"], attempts=1)  # requeued, then restored again
    lose_worker(jobs[1]["id"], attempts=int(stack.env["MAX_ATTEMPTS"]))  # given up
    assert api.wait(jobs[0]["id"], statuses=("succeeded",), timeout=60)["attempts"] == 2
    assert api.wait(jobs[1]["id"], statuses=("failed",), timeout=30)["error"]["code"] == "attempts_exhausted"

    def moved(outcome: str, code: str) -> float:
        return (_value(_scrape(cpu), "portrait_jobs_total", outcome=outcome, error_code=code)
                - _value(before, "portrait_jobs_total", outcome=outcome, error_code=code))

    wait_until(lambda: moved("requeued", "lease_expired") == 1 and moved("failed", "attempts_exhausted") == 1,
               15, 0.3, "both counted")

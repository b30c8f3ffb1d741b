// The try-it page: submit a photo with your API key, watch the job, compare before / after.
// Plain browser JavaScript against the public API (the same calls as any client), no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const TERMINAL = ["succeeded", "failed", "canceled", "expired"];
let file = null;

// a retry of the same click is safe: the key makes the API replay instead of creating a second job
function newKey() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

function setFile(f) {
  file = f;
  $("file-name").textContent = f ? `${f.name} (${Math.round(f.size / 1024)} KiB)` : "";
}

function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${$("api-key").value.trim()}`, ...(options.headers || {}) };
  return fetch(path, { ...options, headers }).then(async (r) => {
    const body = await r.json().catch(() => ({}));
    if (!r.ok) {
      const e = body.error || { code: `http_${r.status}`, message: r.statusText };
      throw new Error(`${e.code}: ${e.message}`);
    }
    return body;
  });
}

function showStatus(job) {
  $("status").textContent = job.status;
  $("status").dataset.status = job.status;
  const seen = [...$("timeline").children].map((li) => li.dataset.status);
  if (!seen.includes(job.status)) {
    const li = document.createElement("li");
    li.dataset.status = job.status;
    li.textContent = `${job.status} at ${new Date().toLocaleTimeString()}`;
    $("timeline").appendChild(li);
  }
  if (job.error) $("error").textContent = `${job.error.code}: ${job.error.message}`;
}

function drawFaces(job) {
  const before = $("before");
  const svg = $("boxes");
  const w = before.naturalWidth, h = before.naturalHeight;
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.innerHTML = "";
  const tbody = $("faces").querySelector("tbody");
  tbody.innerHTML = "";
  const fmt = (v, d = 3) => (v === null || v === undefined ? "–" : Number(v).toFixed(d));
  (job.faces || []).forEach((f, i) => {
    const [x1, y1, x2, y2] = f.box;
    const ns = "http://www.w3.org/2000/svg";
    const rect = document.createElementNS(ns, "rect");
    Object.entries({ x: x1, y: y1, width: x2 - x1, height: y2 - y1 }).forEach(([k, v]) => rect.setAttribute(k, v));
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", x1 + 4);
    const size = Math.max(10, (y2 - y1) / 4);
    label.setAttribute("font-size", size);
    label.setAttribute("y", Math.max(size, y1 - size / 4));
    label.textContent = String(i + 1);
    svg.append(rect, label);
    const row = tbody.insertRow();
    [i + 1, `${fmt(x1, 0)}, ${fmt(y1, 0)}, ${fmt(x2 - x1, 0)}, ${fmt(y2 - y1, 0)}`, fmt(f.score),
      fmt(f.mask_coverage, 2), fmt(f.identity_cosine), fmt(f.fidelity, 2)].forEach((v) => { row.insertCell().textContent = v; });
  });
  $("model").textContent = `model ${job.model_version}; ${(job.faces || []).length} face(s); ` +
    `${job.timings_ms && job.timings_ms.job_total ? Math.round(job.timings_ms.job_total) + " ms on the worker" : ""}`;
}

function showResult(job) {
  $("result").hidden = false;
  $("before").src = URL.createObjectURL(file);
  $("after").src = job.output.url;
  $("download").href = job.output.url;
  const ready = () => drawFaces(job);
  if ($("before").complete && $("before").naturalWidth) ready(); else $("before").onload = ready;
  $("after").onload = () => { $("result").dataset.loaded = "true"; };
}

async function poll(id) {
  for (let delay = 400; ; delay = Math.min(delay * 1.3, 2000)) {
    const job = await api(`/v1/jobs/${id}`);
    showStatus(job);
    if (TERMINAL.includes(job.status)) return job;
    await new Promise((r) => setTimeout(r, delay));
  }
}

async function submit(event) {
  event.preventDefault();
  if (!file) { $("error").textContent = "choose a photo first"; return; }
  localStorage.setItem("portrait-api-key", $("api-key").value.trim());
  $("submit").disabled = true;
  $("progress").hidden = false;
  $("result").hidden = true;
  $("timeline").innerHTML = "";
  $("error").textContent = "";
  try {
    const form = new FormData();
    form.append("file", file);
    const fidelity = $("fidelity-auto").checked ? "auto" : Number($("fidelity").value);
    form.append("options", JSON.stringify({ upscale: Number($("upscale").value), fidelity }));
    const job = await api("/v1/jobs", { method: "POST", body: form, headers: { "Idempotency-Key": newKey() } });
    $("job-id").textContent = job.id;
    showStatus(job);
    const done = await poll(job.id);
    if (done.status === "succeeded") showResult(done);
  } catch (e) {
    $("status").textContent = "error";
    $("error").textContent = e.message;
  } finally {
    $("submit").disabled = false;
  }
}

function init() {
  $("api-key").value = localStorage.getItem("portrait-api-key") || "";
  $("file").addEventListener("change", () => setFile($("file").files[0] || null));
  const drop = $("drop");
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
  drop.addEventListener("drop", (e) => setFile(e.dataTransfer.files[0] || null));
  const showFidelity = () => {
    $("fidelity").disabled = $("fidelity-auto").checked;
    $("fidelity-value").textContent = $("fidelity-auto").checked ? "auto" : $("fidelity").value;
  };
  $("fidelity").addEventListener("input", showFidelity);
  $("fidelity-auto").addEventListener("change", showFidelity);
  $("slider").addEventListener("input", () => {
    const cut = `inset(0 ${100 - Number($("slider").value)}% 0 0)`;
    $("before-clip").style.clipPath = cut;
    $("boxes").style.clipPath = cut;
    $("divider").style.left = `${$("slider").value}%`;
  });
  $("submit-form").addEventListener("submit", submit);
}

document.addEventListener("DOMContentLoaded", init);

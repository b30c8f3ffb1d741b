"""The try-it page in a real browser (Debian's chromium, driven by Selenium): paste a key, choose a photo,
watch the job reach succeeded, compare before / after with the slider, read the per-face report."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from harness import Api, Stack

OUT = Path(__file__).resolve().parents[2] / "out" / "page"  # the screenshot docs/api.md shows


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert binary and driver, "chromium and chromium-driver are missing: scripts/ensure-services.sh installs them"
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,1700"):
        opts.add_argument(arg)
    b = webdriver.Chrome(options=opts, service=Service(driver))
    yield b
    b.quit()


def test_the_page_restores_a_photo_end_to_end(stack: Stack, api: Api, browser, tmp_path: Path) -> None:
    """With what a deployment serves by default (the learned restorer; the shared stack runs the stand-in),
    so that the screenshot docs/api.md shows is the product's."""
    with stack.private_pair("page", {"MODEL_PATH": ""}) as (_worker, server):  # empty = the default
        _restore_on_the_page(server.url, api, browser, tmp_path)


def _restore_on_the_page(url: str, api: Api, b, tmp_path: Path) -> None:
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
    from skimage import data

    from restoration.generator import read_generator_metadata
    from restoration.pipeline import shipped_model

    photo = tmp_path / "astronaut.jpg"  # public domain (NASA), so the screenshot may ship in the docs
    Image.fromarray(data.astronaut()).resize((256, 256)).save(photo, quality=60)
    b.get(f"{url}/")
    assert b.find_element(By.ID, "docs-link").get_attribute("href").endswith("/docs")
    b.find_element(By.ID, "api-key").send_keys(api.api_key)
    b.find_element(By.ID, "file").send_keys(str(photo))
    Select(b.find_element(By.ID, "upscale")).select_by_visible_text("2")
    b.find_element(By.ID, "submit").click()

    status = WebDriverWait(b, 300, 0.3).until(
        lambda d: (s := d.find_element(By.ID, "status").text) in ("succeeded", "failed", "canceled", "error") and s)
    assert status == "succeeded", b.find_element(By.ID, "error").text
    WebDriverWait(b, 30).until(lambda d: d.find_element(By.ID, "result").get_attribute("data-loaded") == "true")
    timeline = [li.get_attribute("data-status") for li in b.find_elements(By.CSS_SELECTOR, "#timeline li")]
    assert timeline[0] == "queued" and timeline[-1] == "succeeded", timeline

    job_id = b.find_element(By.ID, "job-id").text
    job = api.http.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded" and len(job["faces"]) >= 1
    shipped = read_generator_metadata(shipped_model())["model_version"]
    assert job["model_version"] == shipped and shipped in b.find_element(By.ID, "model").text
    rows = b.find_elements(By.CSS_SELECTOR, "#faces tbody tr")
    assert len(rows) == len(job["faces"])
    cells = [c.text for c in rows[0].find_elements(By.TAG_NAME, "td")]
    cosine = job["faces"][0]["identity_cosine"]
    assert cells[4] == (f"{cosine:.3f}" if cosine is not None else "–"), cells
    # the page's default is the service's: fidelity auto, and the weight each face got is shown
    assert job["options"]["fidelity"] == "auto" and cells[5] == f"{job['faces'][0]['fidelity']:.2f}", cells
    assert len(b.find_elements(By.CSS_SELECTOR, "#boxes rect")) == len(job["faces"])
    sizes = b.execute_script("return [document.getElementById('after').naturalWidth,"
                             " document.getElementById('before').naturalWidth]")
    assert sizes == [512, 256], "the result is the ×2 restoration beside the input"

    b.execute_script("const s = document.getElementById('slider'); s.value = 20;"
                     " s.dispatchEvent(new Event('input'));")
    clip = b.execute_script("return document.getElementById('before-clip').style.clipPath")
    assert clip == "inset(0px 80% 0px 0px)" or clip == "inset(0 80% 0 0)", clip
    b.execute_script("const s = document.getElementById('slider'); s.value = 55;"
                     " s.dispatchEvent(new Event('input'));")
    OUT.mkdir(parents=True, exist_ok=True)
    b.save_screenshot(str(OUT / "try-it.png"))


def test_the_page_says_why_a_submit_failed(stack: Stack, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    photo = tmp_path / "x.jpg"
    photo.write_bytes(b"\xff\xd8\xff")
    b = browser
    b.get(f"{stack.api_url}/")
    b.find_element(By.ID, "api-key").clear()
    b.find_element(By.ID, "api-key").send_keys("prt_not-a-key")
    b.find_element(By.ID, "file").send_keys(str(photo))
    b.find_element(By.ID, "submit").click()
    error = WebDriverWait(b, 30).until(lambda d: d.find_element(By.ID, "error").text)
    assert error.startswith("unauthorized:"), error
    assert b.find_element(By.ID, "result").is_displayed() is False

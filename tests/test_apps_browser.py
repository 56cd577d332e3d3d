"""Chapter 14's Gradio app in a real headless Chromium (selenium): type a customer question, click Run, wait
for the assistant's reply on the page, switch the page to 中文 and ask again; screenshot both (app.py).

tests/test_apps_app.py calls the same app over HTTP with gradio_client; this file checks what a person sees:
that the page's JavaScript renders, the button reaches the handler and the reply (Chinese too, with a CJK
font) is drawn. It needs Chromium and its driver (`make browser-deps`, or `sudo apt-get install chromium
chromium-driver`) and selenium (the test extra); without them it FAILS, saying what to install: never skips.
Screenshots and a JSON of timings go to $AIGC_RUNS_DIR/browser/ (build/browser/ when unset).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio")  # as tests/test_apps_app.py: gradio comes with the test extra

from PIL import Image

from aigc_lib.apps import app

try:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException, WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError as missing:  # reported by the browser fixture: every test here fails with this advice
    webdriver = None
    _SELENIUM_ERROR = f"{missing}"

REPO = Path(__file__).resolve().parents[1]
INSTALL = ("install Chromium and its driver with `make browser-deps` (tools/install_system_deps.sh), or by "
           "hand: `sudo apt-get install chromium chromium-driver fonts-noto-cjk`")
INSTALL_SELENIUM = ("install it with `.venv/bin/pip install -e \".[test]\"` "
                    "(or `.venv/bin/pip install selenium`)")
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=1280,1600")
WAIT_S = 60  # generous: a click trains nothing here, but a busy 2-core CI machine can stall for seconds
EN_Q, ZH_Q = "How long do refunds take?", "退款需要多长时间？"
REFUND_EN, REFUND_ZH = "within 5 business days", "5个工作日内"  # words of the refund_time fact, each language


def _out_dir() -> Path:
    runs = os.environ.get("AIGC_RUNS_DIR")  # `make test` sets it to build/nbval-runs
    folder = (Path(runs) if runs else REPO / "build") / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def url(one_thread):
    demo = app.build_app("en")
    try:
        _, address, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1",
                                    server_port=_free_port(), quiet=True, share=False)
        assert address.startswith("http://127.0.0.1:")
        yield address
    finally:
        demo.close(verbose=False)


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module; fails (never skips) with what to install when it cannot start."""
    if webdriver is None:
        pytest.fail(f"selenium is not installed ({_SELENIUM_ERROR}): {INSTALL_SELENIUM}.", pytrace=False)
    binary = shutil.which("chromium") or "/usr/bin/chromium"
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    for what, path in (("Chromium", binary), ("chromedriver", driver_path)):
        if not os.access(path, os.X_OK):
            pytest.fail(f"{what} was not found (looked on PATH and at {path}): {INSTALL}.", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    start = time.perf_counter()
    try:
        driver = webdriver.Chrome(options=options, service=Service(driver_path))
    except WebDriverException as error:  # e.g. a driver that does not match the browser's version
        pytest.fail(f"Chromium ({binary}) did not start through {driver_path}: {error.msg}. Chromium and "
                    f"chromedriver must be the same version; {INSTALL}.", pytrace=False)
    driver.started_at = start  # for the JSON: seconds since Chromium was asked to start
    try:
        yield driver
    finally:
        driver.quit()


def _literal(text: str) -> str:
    """`text` as an XPath string literal, apostrophes included ("Assistant's reply")."""
    if "'" not in text:
        return f"'{text}'"
    return "concat(" + ", \"'\", ".join(f"'{part}'" for part in text.split("'")) + ")"


def _textarea(driver, label: str):
    """The textarea of the Gradio Textbox whose visible label is `label` (the app sets no elem_id)."""
    return driver.find_element(By.XPATH, "//label[.//span[@data-testid='block-info']"
                                         f"[normalize-space(.)={_literal(label)}]]//textarea")


def _labels_shown(driver, *labels: str) -> bool:
    try:
        return all(_textarea(driver, label).is_displayed() for label in labels)
    except WebDriverException:
        return False


def _run_button(driver):
    """The open tab's Run button: the one displayed. The language switch relabels the inputs and outputs but
    not the buttons (set_language updates no button), so in Chinese it still reads "Run", not "运行"."""
    texts = {app.UI_TEXT[lang]["go"] for lang in app.UI_TEXT}
    buttons = [b for b in driver.find_elements(By.TAG_NAME, "button")
               if b.text.strip() in texts and b.is_displayed()]
    assert len(buttons) == 1, f"expected one visible {sorted(texts)} button in the open tab: {len(buttons)}"
    return buttons[0]


def _ask(driver, lang: str, question: str, expected: str, shot: str) -> str:
    """Type the question, click Run, wait until the reply box shows `expected`; return the reply shown."""
    t = app.UI_TEXT[lang]
    box = _textarea(driver, t["question"])
    box.clear()
    box.send_keys(question)
    _run_button(driver).click()
    try:
        WebDriverWait(driver, WAIT_S, poll_frequency=0.2).until(
            lambda d: _textarea(d, t["reply"]).get_property("value") == expected)
    except TimeoutException:
        failed = _out_dir() / f"{shot}-failed.png"
        driver.save_screenshot(str(failed))
        pytest.fail(f"after {WAIT_S} s the page's {t['reply']!r} box shows "
                    f"{_textarea(driver, t['reply']).get_property('value')!r}, not {expected!r}; "
                    f"screenshot: {failed}")
    return _textarea(driver, t["reply"]).get_property("value")


def _screenshot(driver, name: str, url: str, seconds: float) -> Path:
    """Save the page as name.png plus name.json {seconds, chromium, url}; check the PNG is a real picture."""
    png = _out_dir() / f"{name}.png"
    assert driver.save_screenshot(str(png)), f"Chromium could not write {png}"
    info = {"seconds": round(seconds, 2),
            "seconds_since_browser_start": round(time.perf_counter() - driver.started_at, 2),
            "chromium": driver.capabilities.get("browserVersion"), "url": url, "screenshot": png.name}
    png.with_suffix(".json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    print(f"\nbrowser: {png} ({info['seconds']} s, Chromium {info['chromium']}, {url})")
    with Image.open(png) as image:
        size, grey = image.size, np.asarray(image.convert("L"), dtype=float)
    # measured (Chromium 156, Debian 12, --window-size=1280,1600): 1280x1457 pixels (the viewport),
    # 61-66 KB, grey std 17.2-17.5, 230 distinct greys; a blank page has std 0 and 1 grey.
    # Thresholds: 1280 wide, over 1000 tall, 5 KB, std 5, 50 greys
    assert size[0] == 1280 and size[1] > 1000, f"{png} is {size}, not the 1280-wide window"
    n_greys = len(np.unique(grey))
    assert png.stat().st_size > 5_000 and grey.std() > 5 and n_greys > 50, \
        f"{png} looks blank: {png.stat().st_size} bytes, grey std {grey.std():.1f}, {n_greys} greys"
    return png


def test_assistant_answers_in_the_browser(browser, url):
    reply, rule, _fact = app.answer(EN_Q, "en")  # the handler itself: the page must show exactly this
    assert REFUND_EN in reply and rule == "answer (grounded)"
    start = time.perf_counter()
    browser.get(url)
    WebDriverWait(browser, WAIT_S).until(
        lambda d: _labels_shown(d, "Customer question", "Assistant's reply"),
        f"the page at {url} showed no 'Customer question' box in {WAIT_S} s")
    shown = _ask(browser, "en", EN_Q, reply, "app-assistant")
    assert REFUND_EN in shown
    assert _textarea(browser, app.UI_TEXT["en"]["rule"]).get_property("value") == rule
    _screenshot(browser, "app-assistant", url, time.perf_counter() - start)


def test_chinese_switch_relabels_the_page_and_answers_in_chinese(browser, url):
    reply, _rule, _fact = app.answer(ZH_Q, "中文")
    assert REFUND_ZH in reply
    start = time.perf_counter()
    browser.get(url)  # a fresh page: English, as built
    WebDriverWait(browser, WAIT_S).until(
        lambda d: _labels_shown(d, "Customer question"),
        f"the page at {url} showed no 'Customer question' box in {WAIT_S} s")
    browser.find_element(By.XPATH, "//label[.//input[@type='radio'][@value='中文']]").click()
    zh = app.UI_TEXT["zh"]
    WebDriverWait(browser, WAIT_S).until(
        lambda d: _labels_shown(d, zh["question"], zh["reply"], zh["rule"]),
        f"the 中文 switch did not relabel the boxes in {WAIT_S} s")
    assert REFUND_ZH in _ask(browser, "zh", ZH_Q, reply, "app-zh")
    _screenshot(browser, "app-zh", url, time.perf_counter() - start)

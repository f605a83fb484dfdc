"""Helpers the browser tests share: open a page and wait for it, read a number's exact value, assert
no alert is open and the console logged no error (a CSP violation is logged as one)."""

from __future__ import annotations

from typing import Any

from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait


def wait_loaded(driver: Any) -> None:
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")


def open_page(driver: Any, url: str) -> None:
    driver.get(url)
    wait_loaded(driver)


def click(driver: Any, css: str) -> None:
    """Click a link or a submit button and wait for the page it leads to. The old page goes stale
    first: right after the click, `readyState` can still be the old page's "complete" (a flaky
    `current_url` in a filter test showed it)."""
    element = WebDriverWait(driver, 30).until(ec.element_to_be_clickable((By.CSS_SELECTOR, css)))
    page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, 30).until(ec.staleness_of(page))
    wait_loaded(driver)


def value_in(driver: Any, css: str) -> list[str]:
    """The exact values (data-value) of the numbers inside the element `css`."""
    root = driver.find_element(By.CSS_SELECTOR, css)
    return [e.get_attribute("data-value") for e in root.find_elements(By.CSS_SELECTOR, "[data-value]")]


def assert_no_alert(driver: Any) -> None:
    try:
        alert = driver.switch_to.alert
    except NoAlertPresentException:
        return
    text = alert.text
    alert.dismiss()
    raise AssertionError(f"an alert opened: {text!r}")


def console_errors(driver: Any) -> list[str]:
    try:
        logs = driver.get_log("browser")
    except Exception:  # not every driver keeps the log
        return []
    return [entry["message"] for entry in logs if entry.get("level") == "SEVERE"]

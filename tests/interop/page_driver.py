#!/usr/bin/python3
"""Drives swarm's web page in headless Chromium (Selenium, Debian's chromium-driver):
log in, add a magnet, watch it reach 100 %, see its diagnosis, deselect a file, remove the
torrent with its data. Prints one line per step; exits non-zero with the reason on the first failure.
Saves a screenshot (phone width) to SHOT after the file was deselected.

  page_driver.py URL USER PASSWORD MAGNET FILE_INDEX SHOT [--timeout S]
"""

import argparse
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait


def main():
    ap = argparse.ArgumentParser()
    for a in ("url", "user", "password", "magnet", "file_index", "shot"):
        ap.add_argument(a)
    ap.add_argument("--timeout", type=float, default=90)
    a = ap.parse_args()
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=412,915", "--no-first-run", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-default-apps"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    driver.set_page_load_timeout(a.timeout)
    driver.set_script_timeout(a.timeout)
    wait = WebDriverWait(driver, a.timeout)
    try:
        driver.get(a.url)
        wait.until(EC.visibility_of_element_located((By.ID, "login")))
        driver.find_element(By.NAME, "username").send_keys(a.user)
        driver.find_element(By.NAME, "password").send_keys(a.password)
        driver.find_element(By.CSS_SELECTOR, "#login button").click()
        wait.until(EC.visibility_of_element_located((By.ID, "app")))
        print("LOGGED_IN", flush=True)

        driver.find_element(By.NAME, "urls").send_keys(a.magnet)
        driver.find_element(By.CSS_SELECTOR, "#add button").click()
        row = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#torrents tbody tr")))
        print("ADDED", flush=True)
        wait.until(lambda d: "100.0%" in d.find_element(By.CSS_SELECTOR, "#torrents tbody tr").text)
        print("COMPLETE", flush=True)

        driver.find_element(By.CSS_SELECTOR, "#torrents tbody tr td.name").click()
        wait.until(EC.visibility_of_element_located((By.ID, "detail")))
        # The doctor's words for it: complete, so nothing is wrong.
        wait.until(lambda d: "Nothing is wrong" in d.find_element(By.ID, "cause").text)
        print("DIAGNOSED", flush=True)
        boxes = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#files tbody input[type=checkbox]"))
        index = int(a.file_index)
        if index >= len(boxes):
            raise SystemExit("only %d files listed" % len(boxes))
        boxes[index].click()
        # The server's view of it, through the page's own session.
        def prio(d):
            return d.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "const h = document.querySelector('#torrents tbody tr').dataset.hash;"
                "fetch('/api/v2/torrents/files?hash=' + h).then(r => r.json())"
                ".then(f => done(f[%d].priority), e => done(-1));" % index)
        wait.until(lambda d: prio(d) == 0)
        print("DESELECTED", flush=True)
        driver.save_screenshot(a.shot)

        driver.find_element(By.ID, "remove-data").click()
        wait.until(EC.alert_is_present()).accept()
        wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, "#torrents tbody tr"))
        print("REMOVED", flush=True)
    except Exception as e:  # the reason, on one line, for the Rust side's message
        print("FAILED %s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else ""), flush=True)
        try:
            driver.save_screenshot(a.shot)
        except Exception:
            pass
        return 1
    finally:
        driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())

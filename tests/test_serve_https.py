"""`lb-lab serve` with HTTPS: the curl it prints works, and its CA goes when it stops."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

CURL = shutil.which("curl")


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_the_printed_curl_reaches_the_lab_over_https_and_the_ca_goes_at_exit():
    process = subprocess.Popen(
        [sys.executable, "-m", "lab", "serve", "--port", "0", "--paused"]
        + ["--balancer-port", "0", "--backend-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = ""
        for line in process.stdout:
            output += line
            if "Press Ctrl-C" in line:
                break
        page = re.search(r"Load Balancing Lab: (http://\S+)", output)[1]
        service = re.search(r"service:\s+(http://\S+)", output)[1]
        curl = re.search(r"^\s+(curl --cacert .*?)\s+# once HTTPS is on", output, re.M)
        assert curl, output
        command = shlex.split(curl[1])
        ca = Path(command[command.index("--cacert") + 1])

        # The page offers the same CA for download.
        with urllib.request.urlopen(f"{page}lab-ca.pem", timeout=10) as answer:
            assert answer.read() == ca.read_bytes()

        # Passthrough: today's Layer 4 balancer pipes the TLS to a backend's TLS listener.
        request = urllib.request.Request(
            f"{service}command",
            data=json.dumps({"action": "set_tls", "tls": "passthrough"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert json.loads(answer.read()) == {"ok": True}
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        body = json.loads(result.stdout)
        assert body["tls"]["sni"] == "shop.lab.test" and body["backend"].startswith("b")
    finally:
        process.terminate()
        assert process.wait(20) == 0
    assert not ca.exists() and not ca.parent.exists()  # the lab's runtime folder is gone

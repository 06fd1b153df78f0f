"""The lab's own certificate authority: a CA and one leaf certificate, made fresh at start-up.

HTTPS needs a certificate a client can check. The lab makes its own CA with
`trustme` (a maintained library made for exactly this; no openssl subprocess)
and signs one leaf for every name the lab's HTTPS uses: shop.lab.test and
api.lab.test (the SNI names the traffic sends), localhost and IP 127.0.0.1.
Nothing is committed to the repository: each lab run makes its own, in its
runtime folder, and a learner trusts it only by passing its ca.pem (curl
--cacert). The private keys are written readable by their owner only (0600).

The files, in the folder:

    ca.pem        the CA's certificate: what clients verify against
    cert.pem      the leaf's certificate chain (leaf first)
    key.pem       the leaf's private key (0600)
    combined.pem  cert.pem then key.pem in one file, as HAProxy's `crt` wants it (0600)
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import trustme

NAMES = ("shop.lab.test", "api.lab.test", "localhost", "127.0.0.1")
ORGANIZATION = "Load Balancing Lab"
PRIVATE = 0o600
OWNER = "owner"  # the pid of the lab that made a runtime folder (runtime_certificates)


@dataclass(frozen=True)
class LabCertificates:
    """Where the lab's CA and leaf live (all PEM files)."""

    folder: Path
    ca: Path
    certificate: Path
    key: Path
    combined: Path

    def as_json(self) -> dict[str, str]:
        return {name: str(getattr(self, name)) for name in ("ca", "certificate", "key", "combined")}


def make_certificates(folder: Path, names: tuple[str, ...] = NAMES) -> LabCertificates:
    """Make a new CA and a leaf for `names` and write them into `folder` (made if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name=ORGANIZATION)
    leaf = ca.issue_cert(*names, organization_name=ORGANIZATION)
    chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    key = leaf.private_key_pem.bytes()
    files = LabCertificates(
        folder,
        ca=folder / "ca.pem",
        certificate=folder / "cert.pem",
        key=folder / "key.pem",
        combined=folder / "combined.pem",
    )
    _write(files.ca, ca.cert_pem.bytes())
    _write(files.certificate, chain)
    _write(files.key, key, PRIVATE)
    _write(files.combined, chain + key, PRIVATE)
    return files


def runtime_certificates(prefix: str = "lb-lab-tls-") -> LabCertificates:
    """The lab's certificates in a new private temporary folder, removed at process exit.

    A lab killed with SIGKILL cannot remove its folder, so each folder names the process
    that made it (`owner`), and a new lab first removes those whose owner is gone.
    """
    sweep_abandoned(Path(tempfile.gettempdir()), prefix)
    folder = Path(tempfile.mkdtemp(prefix=prefix))  # mode 0700: only its owner may look in
    (folder / OWNER).write_text(str(os.getpid()))
    atexit.register(shutil.rmtree, folder, True)
    return make_certificates(folder)


def sweep_abandoned(parent: Path, prefix: str) -> list[Path]:
    """Remove the certificate folders in `parent` whose owning process no longer runs
    (only this user's, only those that name an owner); returns what was removed."""
    removed = []
    for folder in parent.glob(f"{prefix}*"):
        try:
            if folder.stat().st_uid != os.getuid():
                continue
            owner = int((folder / OWNER).read_text())
        except (OSError, ValueError):
            continue  # not ours to judge: no owner named, or not readable
        if not _running(owner):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: running
    return True


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to a new file created with `mode` (a key is never readable, even briefly)."""
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as file:
        os.fchmod(file.fileno(), mode)  # O_CREAT's mode is masked by umask, and not applied
        file.write(data)  # to a file that already existed

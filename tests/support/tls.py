"""A throwaway self-signed certificate for TLS tests (made with the ``openssl`` CLI)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path


def self_signed_cert(
    directory: Path, host: str = "127.0.0.1", *, dns: tuple[str, ...] = ()
) -> tuple[Path, Path]:
    """Write ``cert.pem`` and ``key.pem`` for ``host`` (an IP address), and for the names
    ``dns`` too, into ``directory``."""
    names = ",".join([f"IP:{host}", *(f"DNS:{name}" for name in dns)])
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the openssl command is needed to make a test certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            f"/CN={host}",
            "-addext",
            f"subjectAltName={names}",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def trusting(cert: Path) -> ssl.SSLContext:
    """A client context that trusts only ``cert`` and verifies the server's name against it."""
    return ssl.create_default_context(cafile=str(cert))

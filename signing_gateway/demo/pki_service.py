"""The demo PKI's live services on loopback: certomancer's animator (OCSP responder, CRLs,
time-stamping, CA certificates) over the declaration in the demo PKI's folder, read
again whenever it changes, so that ``signing-gateway pki revoke`` is answered at once.
Time is the real time; the animator's fake-time header is refused."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from certomancer.integrations.animator import Animator, AnimatorArchStore
from certomancer.registry import ArchLabel
from werkzeug.serving import BaseWSGIServer, make_server

from signing_gateway.demo.pki import ARCH, DemoPki

__all__ = ["PkiService", "start_pki_service"]

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]


class PkiService:
    """A WSGI application serving ``pki``'s architecture."""

    def __init__(self, pki: DemoPki) -> None:
        self.pki = pki
        self._stamp: int | None = None
        self._animator: Animator | None = None
        self._lock = threading.Lock()

    def animator(self) -> Animator:
        """The animator of the declaration as it is now (rebuilt after a change)."""
        stamp = self.pki.config_path.stat().st_mtime_ns
        with self._lock:
            if self._animator is None or stamp != self._stamp:
                store = AnimatorArchStore({ArchLabel(ARCH): self.pki.architecture()})
                self._animator = Animator(store, with_web_ui=False, allow_time_override=False)
                self._stamp = stamp
            return self._animator

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        result: Iterable[bytes] = self.animator()(environ, start_response)
        return result


def start_pki_service(pki: DemoPki) -> BaseWSGIServer:
    """Serve ``pki`` at the address its certificates name, in a daemon thread; the
    server (``shutdown()`` stops it). OSError when the port is taken."""
    parts = urlsplit(pki.service_url)
    server = make_server(
        parts.hostname or "127.0.0.1", parts.port or 80, PkiService(pki), threaded=True
    )
    thread = threading.Thread(target=server.serve_forever, name="demo-pki", daemon=True)
    thread.start()
    log.info("demo PKI services (OCSP, CRL, TSA) at %s", pki.service_url)
    return server

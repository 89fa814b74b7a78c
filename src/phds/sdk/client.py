"""The requester's client of the hub's HTTP API (``docs/reference/studies-and-tasks-api.md``).

Errors the hub answers with come back as the same :class:`~phds.errors.PhdsError` subclass the hub
raised (its ``code``), carrying the hub's message; a 422 also carries ``field`` and every ``details``
entry. Waiting uses the hub's long poll (``/studies/{id}/wait?after_version=N``): the client sleeps in
no loop of its own, it is woken by the hub when the study changes.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx
import pandas as pd

from phds import __version__, errors
from phds.errors import Conflict, InputError, PhdsError
from phds.protocol.catalogue import CatalogueEntry, profile_value
from phds.protocol.studies import StudySpec, StudyView
from phds.protocol.trust import OrganisationAttestation, ReleaseEnvelope
from phds.sdk.benchmark_methods import BenchmarkMethods
from phds.sdk.http_errors import error_from_response
from phds.sdk.learning_methods import LearningMethods
from phds.sdk.result_registry import result_for
from phds.sdk.results import StudyResult
from phds.sdk.stats_methods import StatsMethods
from phds.sdk.studyfile import load_study, study_from_mapping
from phds.sdk.synthetic_methods import SynthesisMethods
from phds.sdk.verify import Verification, requester_signer, verify_study
from phds.trust.envelopes import open_envelope
from phds.trust.keys import KeyPair
from phds.trust.specs import sign_spec

if TYPE_CHECKING:
    from phds.sdk.billing import Applications, BillingClient, Invoices, Quotes

log = logging.getLogger(__name__)

API = "/api/v1"
MAX_WAIT_POLL = 60.0
"""The hub holds a long poll at most this long; longer waits are several polls."""

Progress = Callable[[StudyView], None]


class Client(StatsMethods, LearningMethods, BenchmarkMethods, SynthesisMethods):
    """A requester's connection to a hub: submit studies, follow them, fetch their results.

    ``transport`` is passed to :class:`httpx.Client` (for proxies, custom TLS, or an in-process hub).
    Use as a context manager or call :meth:`close`. The statistics' one-call methods (:meth:`glm`,
    :meth:`cox`, :meth:`km`, :meth:`summary`, :meth:`table`, :meth:`characterisation`) are in
    :class:`~phds.sdk.stats_methods.StatsMethods`.
    """

    def __init__(
        self,
        hub_url: str,
        token: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        key: KeyPair | str | Path | None = None,
        attestation: OrganisationAttestation | str | Path | None = None,
    ) -> None:
        """*key* (a requester key file or :class:`~phds.trust.KeyPair`) and *attestation* (the operator's
        attestation of the organisation, a JSON file) sign every study; they default to the files named by
        ``PHDS_REQUESTER_KEY`` and ``PHDS_ATTESTATION``. Hospitals that require signed studies decline
        unsigned ones."""
        if not token:
            raise errors.AuthenticationError("no API token given (set PHDS_TOKEN or pass token=)")
        self.signer = requester_signer(key, attestation)
        self._node_keys: dict[str, str] | None = None
        self.hub_url = hub_url.rstrip("/")
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=self.hub_url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": f"phds-sdk/{__version__}"},
            timeout=timeout,
            transport=transport,
        )

    # -- studies -----------------------------------------------------------------------------------------

    def submit(self, study: StudySpec | Mapping[str, Any] | str | Path) -> Study:
        """Submit a study given as a :class:`StudySpec`, a mapping, or the path of a study file."""
        if isinstance(study, StudySpec):
            spec = study
        elif isinstance(study, Mapping):
            spec = study_from_mapping(study)
        else:
            spec = load_study(study)
        if self.signer is not None:
            signed = sign_spec(spec.model_dump(mode="json"), *self.signer)
            view = StudyView.model_validate(
                self._request("POST", "/studies/signed", json=signed.model_dump(mode="json"))
            )
        else:
            view = StudyView.model_validate(
                self._request("POST", "/studies", json=spec.model_dump(mode="json"))
            )
        log.info("submitted study %s (%s) to %d hospitals", view.id, spec.title, len(spec.hospitals))
        return Study(self, view)

    def study(self, study_id: str) -> StudyView:
        """The study as the hub reports it now."""
        return StudyView.model_validate(self._request("GET", f"/studies/{_id(study_id)}"))

    def cancel(self, study_id: str, reason: str | None = None) -> StudyView:
        """Cancel an unfinished study of your organisation; hospitals skip its open tasks. Cancelling a
        cancelled study returns it; a finished one raises :class:`~phds.errors.Conflict`."""
        body = {"reason": reason} if reason else {}
        return StudyView.model_validate(self._request("POST", f"/studies/{_id(study_id)}/cancel", json=body))

    def studies(self) -> list[StudyView]:
        """The studies visible to this token, newest first."""
        return [StudyView.model_validate(item) for item in self._request("GET", "/studies")]

    def wait(
        self, study_id: str, *, timeout: float | None = None, progress: Progress | None = None
    ) -> StudyView:
        """Block until the study reaches a final state (or *timeout* seconds pass); its latest view.

        *progress* is called with the first view and with every changed one. On timeout the latest
        view is returned, not final: check ``view.state.is_final``.
        """
        view = self.study(study_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        changed = True
        while True:
            if progress is not None and changed:
                progress(view)
            if view.state.is_final:
                return view
            poll = MAX_WAIT_POLL
            if deadline is not None:
                poll = min(poll, deadline - time.monotonic())
                if poll <= 0:
                    return view
            latest = StudyView.model_validate(
                self._request(
                    "GET",
                    f"/studies/{_id(study_id)}/wait",
                    # Without a progress callback, intermediate changes are of no use: ask the hub
                    # to answer only when the study has finished.
                    params={
                        "after_version": view.version,
                        "timeout": round(poll, 3),
                        "final": progress is None,
                    },
                    timeout=poll + self.timeout,
                )
            )
            changed = latest.version != view.version  # an unchanged view: the hub's poll just ended
            view = latest

    def results(
        self,
        study_id: str,
        *,
        wait: bool = False,
        progress: Progress | None = None,
        check_signatures: bool = True,
    ) -> StudyResult:
        """The typed result of a finished study; with *wait*, wait for it first.

        With *check_signatures* (the default) every release of the study must carry a valid signature of
        its node's key as the hub pinned it (:class:`~phds.errors.SignatureInvalid` otherwise); :meth:`verify`
        also recomputes the result from them. :class:`~phds.errors.Conflict` if the study is not finished or
        ended without a result. A pseudonymised benchmarking result has no releases to check: the hub
        withholds them, since each names its node (docs/howto/benchmarking.md).
        """
        view = self.wait(study_id, progress=progress) if wait else self.study(study_id)
        if view.result is None or not view.state.is_final:
            if not view.state.is_final:
                raise Conflict(f"study {view.id} is {view.state.value}; it has no result yet (wait for it)")
            why = f": {view.error}" if view.error else ""
            raise Conflict(f"study {view.id} ended {view.state.value} without a result{why}")
        if check_signatures and not releases_withheld(view):
            envelopes = self.releases(view.id)
            if envelopes:
                if self._node_keys is None or any(e.hospital not in self._node_keys for e in envelopes):
                    self._node_keys = self.node_keys()  # pinned by the hub at enrolment; fetched once
                for envelope in envelopes:
                    open_envelope(envelope, self._node_keys)
        return result_for(view)

    # -- verification ---------------------------------------------------------------------------------

    def releases(self, study_id: str) -> list[ReleaseEnvelope]:
        """The study's signed releases, by round and hospital (as the hub relays them)."""
        return [
            ReleaseEnvelope.model_validate(e)
            for e in self._request("GET", f"/studies/{_id(study_id)}/releases")
        ]

    def node_keys(self) -> dict[str, str]:
        """Each hospital's node public key as the hub pinned it at enrolment (hospital → key)."""
        return dict(self._request("GET", "/nodes/keys"))

    def verify(self, study_id: str, pinned: Mapping[str, str] | None = None) -> Verification:
        """Check every release's node signature against *pinned* keys (hospital → key; default: the hub's,
        trusted on first use) and recompute the study's result from the signed payloads alone.

        :class:`~phds.errors.SignatureInvalid` if a signature, a round's state or the result does not
        match what the nodes signed: a hub that altered anything is caught."""
        view = self.study(study_id)
        sessions = self._request("GET", f"/studies/{study_id}/secagg") if view.spec.secure_aggregation else []
        keys = dict(pinned) if pinned else self.node_keys()
        return verify_study(view, self.releases(study_id), keys, sessions)

    # -- catalogue -----------------------------------------------------------------------------------

    def catalogue(self) -> pd.DataFrame:
        """Every hospital's published dataset profile, one row per hospital."""
        entries = [CatalogueEntry.model_validate(e) for e in self._request("GET", "/catalogue")]
        rows = []
        for e in entries:
            p = e.profile
            temporal = profile_value(p, "temporal") or {}
            rows.append(
                {
                    "hospital": e.hospital,
                    "display_name": e.display_name,
                    "country": e.country,
                    "persons": profile_value(p, "number_of_unique_individuals"),
                    "records": profile_value(p, "number_of_records"),
                    "min_typical_age": profile_value(p, "min_typical_age"),
                    "max_typical_age": profile_value(p, "max_typical_age"),
                    "start": profile_value(temporal, "start_date"),
                    "end": profile_value(temporal, "end_date"),
                    "cdm_version": profile_value(p, "cdm_version"),
                    "published_at": e.published_at,
                }
            )
        columns = ["hospital", "display_name", "country", "persons", "records", "min_typical_age"]
        columns += ["max_typical_age", "start", "end", "cdm_version", "published_at"]
        return pd.DataFrame(rows, columns=columns)

    # -- billing ---------------------------------------------------------------------------------------

    @cached_property
    def billing(self) -> BillingClient:
        """The money path (:class:`~phds.sdk.billing.BillingClient`): the operator's calls, and the
        :attr:`applications`, :attr:`quotes` and :attr:`invoices` below (loaded on first use)."""
        from phds.sdk.billing import BillingClient

        return BillingClient(self)

    @property
    def applications(self) -> Applications:
        """Data-access applications: file, list, read (:class:`~phds.sdk.billing.Applications`)."""
        return self.billing.applications

    @property
    def quotes(self) -> Quotes:
        """An application's quotes: list, accept, decline (:class:`~phds.sdk.billing.Quotes`)."""
        return self.billing.quotes

    @property
    def invoices(self) -> Invoices:
        """Invoices: list, download, verify against the node keys (:class:`~phds.sdk.billing.Invoices`)."""
        return self.billing.invoices

    # -- plumbing ------------------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The hub's JSON answer to *method* on ``/api/v1`` + *path*; an error answer raises its error."""
        response = self._send(method, path, **kwargs)
        return None if response.status_code == 204 else response.json()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The hub's successful response (for bodies that are not JSON, such as an invoice's PDF)."""
        try:
            response = self._http.request(method, API + path, **kwargs)
        except httpx.TimeoutException as exc:
            what = type(exc).__name__
            raise PhdsError(f"the hub at {self.hub_url} did not answer in time ({what})") from exc
        except httpx.TransportError as exc:
            raise PhdsError(f"cannot reach the hub at {self.hub_url}: {exc}") from exc
        if response.status_code >= 400:
            raise error_from_response(response)
        return response

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Study:
    """A submitted study: its id and latest view, with shortcuts to follow it."""

    def __init__(self, client: Client, view: StudyView) -> None:
        self.client = client
        self.view = view

    @property
    def id(self) -> str:
        return self.view.id

    @property
    def state(self) -> str:
        return self.view.state.value

    def cancel(self, reason: str | None = None) -> StudyView:
        """Cancel this study (see :meth:`Client.cancel`)."""
        self.view = self.client.cancel(self.id, reason)
        return self.view

    def refresh(self) -> StudyView:
        """Fetch the latest view."""
        self.view = self.client.study(self.id)
        return self.view

    def wait(self, *, timeout: float | None = None, progress: Progress | None = None) -> StudyView:
        """Wait for a final state; see :meth:`Client.wait`."""
        self.view = self.client.wait(self.id, timeout=timeout, progress=progress)
        return self.view

    def results(self, *, wait: bool = True, progress: Progress | None = None) -> StudyResult:
        """The typed result, waiting for it by default."""
        return self.client.results(self.id, wait=wait, progress=progress)

    def __repr__(self) -> str:
        return f"<Study {self.id} {self.state}>"


def _id(study_id: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", study_id):
        raise InputError(f"not a study id: {study_id!r}", field="study_id")
    return study_id


def releases_withheld(view: StudyView) -> bool:
    """True when the hub withholds the study's per-hospital releases: a result under pseudonyms."""
    from phds.analyses import get_analysis

    analysis = get_analysis(view.spec.analysis.name, view.spec.analysis.version)
    return analysis.pseudonymises_hospitals and (view.result or {}).get("names_disclosed") is not True

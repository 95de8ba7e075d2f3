"""Earth Engine sign-in that never blocks the plugin and never leaks a token.

* ``ee`` (earthengine-api) is imported only inside functions, when the user
  has chosen Earth Engine; its absence is an :class:`EarthEngineError` of kind
  ``missing_package`` naming the install command.
* Existing credentials are reused, in this order: a service-account JSON key
  given explicitly; the user credentials file written by ``earthengine
  authenticate`` / ``ee.Authenticate()`` (``~/.config/earthengine/credentials``,
  the same file the Earth Engine QGIS plugin writes, so signing in there is
  enough); Application Default Credentials (``GOOGLE_APPLICATION_CREDENTIALS``
  or gcloud).
* A Google Cloud project id is passed in (the dock keeps it in its settings).
* Failures become :class:`EarthEngineError` with a ``kind`` the dock can act on
  (``no_credentials`` and ``expired`` -> offer "Sign in", which calls
  :func:`authenticate_interactive`) and a message saying what to do.  Messages
  are passed through :func:`redact` and raised outside the ``except`` block, so
  neither the message nor the exception chain carries a token or key.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..staging import DetectionError

log = logging.getLogger(__name__)

INSTALL_COMMAND = "python -m pip install earthengine-api"
REGISTER_URL = "https://code.earthengine.google.com/register"
_SECRET_KEYS = ("refresh_token", "access_token", "client_secret", "private_key", "id_token", "private_key_id",
                "token", "code_verifier")
_REDACTED = "<redacted>"
# Whole-match patterns: the match is replaced by <redacted>.
_SECRET_PATTERNS = [  # keys first: a token pattern matching inside a key's body would cut the key's match short
    # A private key, whole or cut off (a truncated log line has no END marker).
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?:.*?-----END [A-Z ]*PRIVATE KEY-----"
               r"|(?:(?:\\n|\\r|\s)*[0-9A-Za-z+/=]{16,})*)", re.S),
    re.compile(r"\bMII[0-9A-Za-z+/=]{16,}(?:(?:\\n|\s)+[0-9A-Za-z+/=]{16,})*"),  # a key's base64 body alone
    re.compile(r"ya29\.[0-9A-Za-z_\-.]+"),  # OAuth access tokens
    re.compile(r"1//[0-9A-Za-z_\-]+"),  # Google refresh tokens
    re.compile(r"\b4/[0-9A-Za-z_\-]{10,}"),  # Google OAuth authorization codes (4/0A...)
    re.compile(r"\beyJ[0-9A-Za-z_\-]+\.[0-9A-Za-z_\-]+(?:\.[0-9A-Za-z_\-]*)?"),  # JWTs (id tokens, assertions)
]
# Prefix patterns: group 1 (the name) is kept, the value after it becomes <redacted>.
_PREFIXED_PATTERNS = [
    re.compile(r"\b(Bearer\s+)[0-9A-Za-z\-._~+/]+=*", re.I),  # Authorization: Bearer ...
    re.compile(r"""(["']?(?:""" + "|".join(_SECRET_KEYS) + r""")["']?\s*[:=]\s*)["']?[^"',}\s&]+["']?""", re.I),
    # Query strings and fragments: OAuth redirect ?code=..., &access_token=..., key=...
    re.compile(r"([?&#;](?:code|access_token|refresh_token|id_token|token|key|client_secret|assertion)=)[^&#\s\"']+",
               re.I),
]


class EarthEngineError(DetectionError):
    """Earth Engine cannot be used; ``kind`` says why, the message what to do.

    Kinds: ``missing_package``, ``no_credentials``, ``expired``, ``no_project``,
    ``project``, ``network``, ``service_account``, ``download``, ``other``.
    """

    def __init__(self, message: str, kind: str = "other"):
        super().__init__(redact(message))
        self.kind = kind

    @property
    def needs_sign_in(self) -> bool:
        return self.kind in ("no_credentials", "expired")


def redact(text: str, extra_secrets: tuple[str, ...] = ()) -> str:
    """``text`` with anything that looks like a token, key or secret replaced by ``<redacted>``."""
    out = str(text)
    for secret in list(extra_secrets) + list(_known_secrets()):
        if secret and len(secret) >= 8:
            out = out.replace(secret, "<redacted>")
    for pat in _SECRET_PATTERNS:
        out = pat.sub(_REDACTED, out)
    for pat in _PREFIXED_PATTERNS:
        out = pat.sub(lambda m: m.group(1) + _REDACTED, out)
    return out


def _known_secrets() -> list[str]:
    """Secret values of the user credentials file (read only to remove them from messages)."""
    try:
        data = json.loads(credentials_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [str(data[k]) for k in _SECRET_KEYS if isinstance(data, dict) and data.get(k)]


def import_ee():
    """Import earthengine-api lazily, or raise a clear error with the install command.

    If the Earth Engine QGIS plugin is installed it has already put its own
    ``ee`` on ``sys.path``; that copy is used as is (never a second one).
    """
    try:
        import ee  # noqa: PLC0415 (lazy on purpose)
    except ImportError:
        ee = None
    if ee is None:
        raise EarthEngineError(
            "Earth Engine needs the earthengine-api package, which is not installed in this Python. "
            f"Install it with:  {INSTALL_COMMAND}  (in QGIS: the OSGeo4W shell on Windows, or the Python "
            "that QGIS uses), or install the 'Google Earth Engine' QGIS plugin, which ships it.",
            "missing_package")
    return ee


def credentials_path() -> Path:
    """The user credentials file of earthengine-api (shared with the Earth Engine QGIS plugin)."""
    return Path(os.path.expanduser("~/.config/earthengine/credentials"))


@dataclass
class CredentialInfo:
    """Where credentials would come from (never their content)."""

    kind: str  # service_account | user | application_default | none
    path: str | None
    detail: str

    def to_dict(self) -> dict:
        return {"kind": self.kind, "path": self.path, "detail": self.detail}


def find_credentials(service_account_key: str | os.PathLike | None = None) -> CredentialInfo:
    """Which credentials :func:`initialize` would use; reads no token into the result."""
    if service_account_key:
        return CredentialInfo("service_account", str(service_account_key), "service-account key file")
    path = credentials_path()
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            ok = isinstance(data, dict) and bool(data.get("refresh_token"))
        except (OSError, ValueError):
            ok = False
        if ok:
            return CredentialInfo("user", str(path), "Earth Engine user credentials (earthengine authenticate, "
                                                     "or the Earth Engine QGIS plugin)")
        return CredentialInfo("none", str(path), "the credentials file exists but holds no sign-in; sign in again")
    adc = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if adc and Path(adc).is_file():
        return CredentialInfo("application_default", adc, "Application Default Credentials")
    gcloud_adc = Path(os.path.expanduser("~/.config/gcloud/application_default_credentials.json"))
    if gcloud_adc.is_file():
        return CredentialInfo("application_default", str(gcloud_adc), "gcloud application-default credentials")
    return CredentialInfo("none", None, "no Earth Engine credentials found")


def _classify(exc: BaseException, project: str | None) -> tuple[str, str]:
    text = f"{type(exc).__name__}: {exc}"
    low = text.lower()
    if "invalid_grant" in low or "expired" in low or "revoked" in low or type(exc).__name__ == "RefreshError":
        return ("expired", "Your Earth Engine sign-in has expired or was revoked. Click 'Sign in' (or run "
                           "`earthengine authenticate` in a terminal) and try again.")
    if "project" in low and ("not been used" in low or "not registered" in low or "permission" in low
                             or "denied" in low or "not found" in low):
        return ("project", f"Earth Engine refused the Cloud project {project!r}: it is not registered for Earth "
                           f"Engine or this account may not use it. Register it at {REGISTER_URL} or choose "
                           "another project id in the settings.")
    if "no project" in low or "project id" in low or "set_project" in low or "quota project" in low:
        return ("no_project", "Earth Engine needs a Google Cloud project id: enter one in the settings "
                              f"(command line: --project ID); register a project at {REGISTER_URL}.")
    if any(w in low for w in ("unable to find the server", "connection", "timed out", "name resolution",
                              "transporterror", "max retries", "network is unreachable", "ssl")):
        return ("network", "Cannot reach Earth Engine: check the internet connection or the proxy settings, "
                           "then try again.")
    if "authorize access" in low or "earthengine authenticate" in low or "credentials" in low:
        return ("no_credentials", "No Earth Engine sign-in was found. Click 'Sign in' (or run `earthengine "
                                  "authenticate`) once; the sign-in is stored for later sessions.")
    return ("other", f"Earth Engine could not be initialised: {text}")


def initialize(project: str | None, *, service_account_key: str | os.PathLike | None = None, ee_module=None,
               check_credentials: bool = True) -> CredentialInfo:
    """Initialise earthengine-api with existing credentials and ``project``.

    Never opens a browser or waits for input; raises :class:`EarthEngineError`
    (see its kinds) instead.  ``ee_module`` replaces the imported package (tests).
    """
    ee = ee_module if ee_module is not None else import_ee()
    info = find_credentials(service_account_key)
    if check_credentials and info.kind == "none":
        raise EarthEngineError(
            f"No Earth Engine sign-in was found ({info.detail}). Click 'Sign in' (or run `earthengine "
            "authenticate` in a terminal) once; the sign-in is stored for later sessions. A service-account "
            "JSON key file can be given instead.", "no_credentials")
    if not project and info.kind != "service_account":
        raise EarthEngineError(
            "Earth Engine needs a Google Cloud project id: enter one in the settings (command line: "
            f"--project ID). Register a project for Earth Engine at {REGISTER_URL}.", "no_project")
    failure: tuple[str, str] | None = None
    try:
        if info.kind == "service_account":
            credentials, email = _service_account_credentials(ee, Path(service_account_key))
            ee.Initialize(credentials, project=project or None)
            log.info("Earth Engine initialised with the service account %s (project %s)", email, project)
        else:
            ee.Initialize(project=project)
            log.info("Earth Engine initialised with %s (project %s)", info.detail, project)
    except EarthEngineError:
        raise
    except Exception as exc:  # noqa: BLE001 (every failure becomes a clear, redacted message)
        failure = _classify(exc, project)
    if failure is not None:
        kind, message = failure
        log.warning("Earth Engine initialisation failed (%s)", kind)
        raise EarthEngineError(message, kind)  # raised outside the except: no chained exception to leak
    return info


def _service_account_credentials(ee, key_path: Path):
    problem = None
    try:
        data = json.loads(key_path.read_text(encoding="utf-8"))
        email = data.get("client_email") if isinstance(data, dict) else None
        if not email or not data.get("private_key"):
            problem = "it is not a service-account key (no client_email/private_key)"
    except OSError as exc:
        problem = f"it cannot be read ({exc.strerror or exc})"
    except ValueError:
        problem = "it is not JSON"
    if problem:
        raise EarthEngineError(f"The service-account key file {key_path} cannot be used: {problem}. Create a "
                               "JSON key for the service account in the Google Cloud console.", "service_account")
    return ee.ServiceAccountCredentials(email, key_file=str(key_path)), email


def authenticate_interactive(*, auth_mode: str | None = "localhost", force: bool = True, ee_module=None) -> Path:
    """Run Earth Engine's OAuth sign-in (opens the browser; blocks until done: run it in a task).

    Stores the refresh token where earthengine-api and the Earth Engine QGIS
    plugin read it (``~/.config/earthengine/credentials``); the token is never
    returned, logged or written anywhere else.  Returns that path.
    """
    ee = ee_module if ee_module is not None else import_ee()
    failure = None
    try:
        ee.Authenticate(auth_mode=auth_mode, force=force)
    except Exception as exc:  # noqa: BLE001
        failure = f"Earth Engine sign-in did not complete: {type(exc).__name__}: {exc}"
    if failure:
        raise EarthEngineError(failure, "no_credentials")
    return credentials_path()

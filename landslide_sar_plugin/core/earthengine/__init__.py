"""Google Earth Engine as a Sentinel-1 source (issue 7).  Importing this package never imports ``ee``.

Entry points: :func:`run_earthengine_detection` (CLI, dock, Processing),
:func:`list_scenes` (the dock's scene table), :func:`initialize`,
:func:`authenticate_interactive` (the dock's "Sign in" button),
:func:`find_credentials`; errors are :class:`EarthEngineError` (a
``DetectionError``) with a ``kind``.
"""

from .auth import (
    INSTALL_COMMAND,
    CredentialInfo,
    EarthEngineError,
    authenticate_interactive,
    find_credentials,
    import_ee,
    initialize,
    redact,
)
from .download import REQUEST_LIMIT_BYTES, EarthEngineTransport, RetryPolicy, TileCache, plan_tiles, tile_side
from .run import MODES, EEListing, default_cache_dir, list_scenes, run_earthengine_detection

__all__ = [
    "INSTALL_COMMAND", "MODES", "REQUEST_LIMIT_BYTES", "CredentialInfo", "EEListing", "EarthEngineError",
    "EarthEngineTransport", "RetryPolicy", "TileCache", "authenticate_interactive", "default_cache_dir",
    "find_credentials", "import_ee", "initialize", "list_scenes", "plan_tiles", "redact",
    "run_earthengine_detection", "tile_side",
]

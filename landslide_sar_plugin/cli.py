"""Headless command line: ``python -m landslide_sar_plugin <command> ...``.

Needs no QGIS.  Every command calls the same ``core`` functions that the QGIS
dock and the Processing algorithms call.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sqlite3
import sys

from .commands import COMMAND_MODULES
from .core.version import __version__

EXIT_OK = 0
EXIT_FAILURE = 1  # the input or the request was wrong; the message says what to do
EXIT_USAGE = 2  # argparse's own code for bad options
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, what shells report for a process ended by `kill`


class CommandError(Exception):
    """A failure the user can fix; printed as one line without a traceback."""


def _chosen_command(argv: list[str] | None) -> str | None:
    """The sub-command named on the command line (the first word that is one), if any."""
    for word in sys.argv[1:] if argv is None else argv:
        if word in COMMAND_MODULES:
            return word
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv`` naming a command, only that command's module is imported.

    ``detect --help`` then loads neither the simulator nor the metrics (start-up
    stays near a bare Python's); without a command every sub-command is listed.
    """
    parser = argparse.ArgumentParser(
        prog="python -m landslide_sar_plugin",
        description="Landslide SAR mapper: candidate landslides from Sentinel-1 backscatter change.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = _chosen_command(argv)
    for name in (chosen,) if chosen else COMMAND_MODULES:
        module = importlib.import_module(f"{__package__}.commands.{name}")
        cmd = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=module.__doc__,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the message (tests swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    from .core.staging import Terminated, signals_raise  # after --help: it imports rasterio

    handler = _CurrentStderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    package_log = logging.getLogger(__package__)
    package_log.addHandler(handler)
    package_log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        with signals_raise():  # SIGTERM (kill PID) unwinds and cleans up exactly like Ctrl+C
            return int(args._run(args) or EXIT_OK)
    except Terminated:
        print("terminated; no partial output was kept", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("interrupted; no partial output was kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        return EXIT_OK
    except (CommandError, ValueError, OSError, sqlite3.Error) as exc:
        # ValueError covers every core error type (DetectionError, ModelError, GeoPackageError, InventoryError...);
        # OSError covers RasterioIOError and file-system failures.
        if args.verbose:
            raise
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as exc:  # a bug: still one line for the user, the traceback with -v
        if args.verbose:
            raise
        print(f"error: unexpected {type(exc).__name__}: {one_line(exc)} (this is a bug; rerun with -v for the "
              "details and report them)", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        package_log.removeHandler(handler)


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (extra lines, e.g. a stack summary, are joined with '; ')."""
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())

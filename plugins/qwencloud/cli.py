"""Running the official ``qwencloud`` CLI as a subprocess and turning its answers into data or errors.

The CLI (``@qwencloud/qwencloud-cli``, tested against 1.4.1) owns the OAuth login; tokenmeter never
reads its credential store. What we rely on (see shared/reference/qwencloud-cli.md §3):

- ``--format json`` prints one JSON document on stdout; errors go to stderr as
  ``{"error": {"code", "message", ...}}`` (sometimes two documents, sometimes after warning lines);
- exit codes are unreliable (network failures exit 1, a gateway 401 exits 1, INVALID_RANGE exits 0),
  so stdout is accepted only when the exit is 0 *and* the expected top-level key is there, and
  errors are classified by ``error.code``, never by the message text alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from tokenmeter import (
    NeedsCredentials,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderUnavailable,
    SourceDataError,
)

INSTALL_HINT = "install it with `npm install -g @qwencloud/qwencloud-cli` (Node >= 18)"
LOGIN_HINT = "run `qwencloud auth login`"

AUTH_CODES = {"AUTH_REQUIRED", "TOKEN_EXPIRED", "AUTH_FAILURE", "UNAUTHORIZED", "401"}
_NETWORK_HINTS = re.compile(
    r"network request failed|fetch failed|ENOTFOUND|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EAI_AGAIN|"
    r"socket hang up|aborted|timed? ?out",
    re.IGNORECASE,
)
_HTTP_STATUS = re.compile(r"\bHTTP (\d{3})\b")
_LOGIN_WORDS = re.compile(r"\b(login|log in|not authenticated|token (?:invalid|expired))\b", re.IGNORECASE)


class CliNotFound(ProviderError):
    """The ``qwencloud`` executable is not installed (or the configured path does not exist)."""


def not_found_message(command: str) -> str:
    return f"qwencloud CLI not found ({command!r}): {INSTALL_HINT}"


def resolve(command: str) -> str | None:
    """The full path of the CLI, or None when it is not installed."""
    found = shutil.which(os.path.expanduser(command))
    # absolute, because the CLI runs in another working directory
    return os.path.abspath(found) if found else None


@dataclass
class Completed:
    """What one CLI run produced."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str


@dataclass
class QwenCloudCli:
    """Runs ``qwencloud <args> --format json`` with subprocess hygiene and maps failures to errors."""

    command: str = "qwencloud"
    timeout: float = 60.0
    source_id: str = "qwencloud"
    #: stdout/stderr above this size are refused (the biggest real answer is a few hundred KB)
    max_output_bytes: ClassVar[int] = 20 * 1024 * 1024

    # -- running ---------------------------------------------------------------------------
    def run(self, args: Sequence[str]) -> Completed:
        """Run the CLI once. Raises CliNotFound, ProviderUnavailable (timeout) or SourceDataError."""
        exe = resolve(self.command)
        if exe is None:
            raise CliNotFound(not_found_message(self.command), source=self.source_id)
        argv = [exe, *args, "--format", "json"]
        env = dict(os.environ)
        env["QWENCLOUD_ERROR_VERBOSITY"] = "suppress"  # no "Warning: …" noise mixed into stderr
        env["NO_COLOR"] = "1"
        env.pop("FORCE_COLOR", None)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                # a .qwencloud.json in the working directory is merged into the CLI's config
                cwd=tempfile.gettempdir(),
                env=env,
                start_new_session=os.name == "posix",  # so a timeout can kill Node and its children
            )
        except FileNotFoundError as exc:
            raise CliNotFound(not_found_message(self.command), source=self.source_id) from exc
        except OSError as exc:
            raise SourceDataError(
                f"cannot run the qwencloud CLI ({exe}): {exc.strerror or exc}", source=self.source_id
            ) from exc

        readers = [_Reader(proc.stdout, self.max_output_bytes), _Reader(proc.stderr, self.max_output_bytes)]
        deadline = time.monotonic() + self.timeout
        timed_out = False
        try:
            while True:
                try:
                    proc.wait(timeout=0.05)
                    break
                except subprocess.TimeoutExpired:
                    if any(r.overflow for r in readers):
                        _kill(proc)
                        break
                    if time.monotonic() >= deadline:
                        timed_out = True
                        _kill(proc)
                        break
        finally:
            # also when the CLI exited: a child it left behind (an update check…) would hold the
            # pipes open and keep running; the whole session is ours to end
            _kill(proc)
            for reader in readers:
                reader.join(5)
        what = self.describe(args)
        if timed_out:
            raise ProviderUnavailable(
                f"{what} did not answer within the {self.timeout:g} s timeout; check the network or raise "
                f"`timeout` in [sources.{self.source_id}]",
                source=self.source_id,
            )
        if any(r.overflow for r in readers):
            raise SourceDataError(
                f"{what} printed more than {_size(self.max_output_bytes)}; refusing to parse it",
                source=self.source_id,
            )
        out, err = (r.text() for r in readers)
        return Completed(list(args), proc.returncode, out, err)

    def json(self, args: Sequence[str], key: str) -> dict[str, Any]:
        """Run the CLI and return its JSON document, which must contain ``key``; else raise."""
        done = self.run(args)
        doc = parse_document(done.stdout)
        if done.returncode == 0 and isinstance(doc, dict) and key in doc:
            return doc
        raise self.error(done, key, doc)

    @staticmethod
    def describe(args: Sequence[str]) -> str:
        words = [a for a in args if not a.startswith("-")][:2]
        return "`qwencloud " + " ".join(words) + "`"

    # -- failures --------------------------------------------------------------------------
    def error(self, done: Completed, key: str, stdout_doc: Any = None) -> ProviderError:
        """The error for a run whose stdout is not usable."""
        what = self.describe(done.args)
        err = first_error(done.stderr)
        if err is None and isinstance(stdout_doc, dict) and isinstance(stdout_doc.get("error"), dict):
            err = stdout_doc["error"]
        if err is not None:
            return self.classify(what, done.returncode, err)
        if done.returncode == 2:
            return NeedsCredentials(f"{what}: not logged in to QwenCloud (exit 2): {LOGIN_HINT}",
                                    source=self.source_id)
        if done.returncode != 0:
            line = first_line(done.stderr) or first_line(done.stdout) or "no error message"
            return ProviderResponseError(f"{what} failed with exit {done.returncode}: {line}",
                                         source=self.source_id)
        if not done.stdout.strip():
            return SourceDataError(
                f"{what} exited 0 but printed nothing; run it by hand with `--format json` to see why",
                source=self.source_id,
            )
        if stdout_doc is None:
            return SourceDataError(
                f"{what} printed something that is not JSON ({first_line(done.stdout)!r}); "
                "is `output.format` forced in ~/.qwencloud/config.json or is this not the QwenCloud CLI?",
                source=self.source_id,
            )
        return SourceDataError(
            f"{what} printed JSON without the {key!r} key; this CLI version is not supported "
            "(tested with @qwencloud/qwencloud-cli 1.4.1)",
            source=self.source_id,
        )

    def classify(self, what: str, returncode: int, err: dict[str, Any]) -> ProviderError:
        """Map a CLI error document ``{"code", "message", "type"?}`` to a tokenmeter error."""
        code = str(err.get("code") or "").strip()
        message = one_line(str(err.get("message") or ""))
        kind = str(err.get("type") or "")
        label = f"{code}: {message}" if message else code or "no message"
        status = _HTTP_STATUS.search(message)
        http = int(status.group(1)) if status else None
        sid = self.source_id
        if (
            code.upper() in AUTH_CODES
            or http == 401
            or (kind in ("gateway", "business") and _LOGIN_WORDS.search(message))
            or (returncode == 2 and not code.upper().startswith("INVALID"))
        ):
            reason = "login expired" if "EXPIRED" in code.upper() else "not logged in or login rejected"
            return NeedsCredentials(f"{what}: QwenCloud {reason} ({code or 'exit 2'}): {LOGIN_HINT}",
                                    source=sid)
        if code == "403" or http == 403:
            return ProviderAuthError(
                f"{what}: QwenCloud refused access ({label}); check the account's permissions in the "
                "console, or log in again with `qwencloud auth login`",
                source=sid,
            )
        if code == "429" or http == 429:
            return ProviderRateLimited(f"{what}: QwenCloud is rate limiting ({label}); try again later",
                                       source=sid)
        if (http is not None and http >= 500) or code in ("500", "502", "503", "504"):
            return ProviderUnavailable(f"{what}: QwenCloud is unavailable ({label}); try again later",
                                       source=sid)
        if code in ("UNKNOWN_ERROR", "NETWORK_ERROR", "") and _NETWORK_HINTS.search(message):
            return ProviderUnavailable(
                f"{what}: network request to QwenCloud failed ({network_cause(message)}); "
                "check the connection (and proxy settings) and retry",
                source=sid,
            )
        if code.upper().startswith("INVALID") or code in ("UNKNOWN_OPTION", "MODEL_NOT_FOUND"):
            return ProviderResponseError(
                f"{what} rejected the request ({label}); tokenmeter may need an update for this CLI version",
                source=sid,
            )
        return ProviderResponseError(f"{what} failed (exit {returncode}, {label})", source=sid)


class _Reader:
    """Drain one pipe in a thread, keeping at most ``limit`` bytes."""

    def __init__(self, pipe: Any, limit: int) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.limit = limit
        self.overflow = False
        self.thread = threading.Thread(target=self._run, args=(pipe,), daemon=True)
        self.thread.start()

    def _run(self, pipe: Any) -> None:
        try:
            while chunk := pipe.read1(65536) if hasattr(pipe, "read1") else pipe.read(65536):
                self.size += len(chunk)
                if self.size > self.limit:
                    self.overflow = True
                    break
                self.chunks.append(chunk)
        finally:
            pipe.close()

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", errors="replace")


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MB" if n >= 1024 * 1024 else f"{n} bytes"


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        if os.name == "posix":
            import signal

            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError, OSError):
        try:
            proc.kill()
        except OSError:
            pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


# -- parsing helpers --------------------------------------------------------------------------


def parse_document(text: str) -> Any:
    """Parse stdout as one JSON document (floats as Decimal, so costs stay exact); None if not JSON."""
    text = text.strip()
    if not text:
        return None
    try:
        return json.loads(text, parse_float=Decimal)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return None


def json_documents(text: str) -> list[Any]:
    """Every JSON object found in ``text`` (stderr may mix warning lines and several documents)."""
    decoder = json.JSONDecoder(parse_float=Decimal)
    docs: list[Any] = []
    pos = text.find("{")
    while pos != -1:
        try:
            doc, end = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError):
            pos = text.find("{", pos + 1)
            continue
        docs.append(doc)
        pos = text.find("{", end)
    return docs


def first_error(stderr: str) -> dict[str, Any] | None:
    """The ``error`` object of the first error document on stderr."""
    for doc in json_documents(stderr):
        if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
            return doc["error"]
        if isinstance(doc, dict) and "code" in doc and "message" in doc:
            return doc
    return None


def one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return one_line(line)
    return ""


def network_cause(message: str) -> str:
    """The useful part of "Network request failed: fetch failed / URL: … / Cause: …"."""
    match = re.search(r"Cause:\s*(.+)", message)
    if match:
        return one_line(match.group(1), 120)
    return one_line(message, 120)


def auth_health(cli: QwenCloudCli) -> tuple[bool, str]:
    """``(ok, message)`` from ``qwencloud auth status --format json``; never raises."""
    try:
        done = cli.run(["auth", "status"])
    except ProviderError as exc:  # CLI missing, timeout, oversized output
        return False, str(exc)
    doc = parse_document(done.stdout)
    if isinstance(doc, dict) and "authenticated" in doc:
        if doc.get("authenticated") is True and done.returncode == 0:
            user = doc.get("user") if isinstance(doc.get("user"), dict) else {}
            token = doc.get("token") if isinstance(doc.get("token"), dict) else {}
            parts = ["logged in"]
            if user.get("aliyunId"):
                parts.append(f"as {user['aliyunId']}")
            if token.get("expires_at"):
                parts.append(f"(login expires {token['expires_at']})")
            message = " ".join(parts)
            if doc.get("warning"):
                message += f"; warning: {doc['warning']}"
            elif doc.get("server_verified") is False:
                message += "; not verified with the server"
            return True, message
        reason = doc.get("reason")
        why = f" ({reason})" if reason else ""
        return False, f"not logged in to QwenCloud{why}: run `qwencloud auth login`"
    return False, str(cli.error(done, "authenticated", doc))

"""The pinned runtimes' environments: the interpreter found, the venv built once with pip, cached, reused.

:class:`RuntimeTable` (the provider ``runtimes`` in the health document) resolves each runtime of
:mod:`etl_localcloud.runtimes` to a :class:`Resolved`: the Python that runs a job or a function, and why it
is the daemon's own Python when it is not the pinned one (never silently). The daemon starts every build in
the background when it starts; a job or an invocation that needs a runtime still being built waits for it.

* The interpreter (``python3.9``, ``python3.12``) is looked up on ``ETL_KIT_RUNTIME_PATH`` (default ``PATH``)
  and in pyenv's versions (``$PYENV_ROOT``, else ``pyenv root`` of a ``pyenv`` on that path). A candidate
  counts only if it runs and reports the wanted ``major.minor`` (an unselected pyenv shim does not).
* The environment is a venv in ``ETL_KIT_RUNTIME_CACHE`` (default ``$XDG_CACHE_HOME/etl-kit/runtimes``,
  i.e. ``~/.cache/etl-kit/runtimes``), outside any state dir so that restarts and other clouds reuse it,
  named after a hash of the interpreter's version, the platform and the pins. It is built under a lock file
  in a temporary folder and renamed into place when pip succeeded, so a concurrent builder waits and a
  killed build never leaves a half environment in use. pip installs wheels only (``--only-binary :all:``).
* ``ETL_KIT_RUNTIMES=daemon`` forces the daemon's Python for every runtime (said so, like a missing one).
* :meth:`Environment.overlay` installs a job's ``--additional-python-modules`` (pinned ``name==version``)
  into a folder of its own, cached by the spec, resolved against the environment's installed versions.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etl_localcloud.dispatcher import Provider
from etl_localcloud.runtimes import GLUE_PYTHONSHELL_39, LAMBDA_RUNTIMES, PINNED, RuntimePins

__all__ = ["Interpreter", "Resolved", "RuntimeTable", "find_interpreter", "cache_root", "ModuleError",
           "Environment", "ensure_environment", "environment_dir",
           "CACHE_VAR", "SEARCH_PATH_VAR", "FORCE_VAR"]

log = logging.getLogger("etl_localcloud.runtimes")

CACHE_VAR = "ETL_KIT_RUNTIME_CACHE"
SEARCH_PATH_VAR = "ETL_KIT_RUNTIME_PATH"
FORCE_VAR = "ETL_KIT_RUNTIMES"
BUILDER_VERSION = "1"  # bump when the way an environment is built changes: every cache key changes with it
MARKER = "etl-kit-runtime.json"  # written last, inside the folder renamed into place: its presence = complete
PIP_TIMEOUT = 1800
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[A-Za-z0-9,._-]+\])?==([A-Za-z0-9.!+_-]+)$")
# What the venv reports of itself: its version and the installed distributions (name -> version).
_INVENTORY = ("import json, platform, importlib.metadata as m; print(json.dumps({'python': platform.python_version(),"
              " 'packages': {(d.metadata['Name'] or '').lower(): d.version for d in m.distributions()}}))")


def _norm(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


class ModuleError(Exception):
    """A job's ``--additional-python-modules`` cannot be installed (the message names the entry and why)."""


@dataclass(frozen=True)
class Interpreter:
    """A Python found on this machine: its executable and its full version (``3.9.18``)."""

    path: str
    version: str


def cache_root(environ: Mapping[str, str] | None = None) -> Path:
    """Where the runtimes' environments live (``ETL_KIT_RUNTIME_CACHE``, else the user's cache dir)."""
    env = os.environ if environ is None else environ
    if env.get(CACHE_VAR):
        return Path(env[CACHE_VAR]).expanduser()
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "etl-kit" / "runtimes"


def _probe(executable: str) -> str | None:
    """The full version of ``executable`` when it runs, else None (a pyenv shim of no selected version fails)."""
    try:
        out = subprocess.run([executable, "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def _pyenv_root(search_path: str, environ: Mapping[str, str]) -> Path | None:
    if environ.get("PYENV_ROOT"):
        return Path(environ["PYENV_ROOT"])
    pyenv = shutil.which("pyenv", path=search_path)
    if not pyenv:
        return None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=30)
        if out.returncode == 0 and out.stdout.strip():
            return Path(out.stdout.strip())
    return None


def _version_key(path: str) -> tuple[int, ...]:
    """Sort key of a pyenv version folder's executable (``.../versions/3.9.18/bin/python3.9`` -> (3, 9, 18))."""
    name = Path(path).parent.parent.name
    return tuple(int(p) for p in re.findall(r"\d+", name)[:3])


def find_interpreter(minor: str, environ: Mapping[str, str] | None = None) -> Interpreter | None:
    """A working ``python<minor>`` on the search path or among pyenv's versions (newest patch first).

    Parameters
    ----------
    minor
        ``major.minor``, e.g. ``"3.9"``.
    environ
        Where ``ETL_KIT_RUNTIME_PATH`` / ``PATH`` and ``PYENV_ROOT`` are read (default: this process's).
    """
    env = os.environ if environ is None else environ
    search = env.get(SEARCH_PATH_VAR, env.get("PATH", ""))
    candidates = [p for p in [shutil.which(f"python{minor}", path=search)] if p]
    root = _pyenv_root(search, env)
    if root is not None:
        found = glob.glob(str(root / "versions" / f"{minor}.*" / "bin" / f"python{minor}"))
        candidates += sorted(found, key=_version_key, reverse=True)
    for candidate in candidates:
        version = _probe(candidate)
        if version and (version == minor or version.startswith(minor + ".")):
            return Interpreter(path=candidate, version=version)
    return None


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (other processes building the same environment wait here)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _pip(python: str, args: list[str], say: Callable[[str], None]) -> None:
    """Run ``python -m pip install ARGS`` (wheels only), relaying its progress lines; raise with pip's error."""
    cmd = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--only-binary", ":all:",
           *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL)
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        lines.append(line)
        if line.startswith(("Collecting", "Installing collected", "Successfully installed", "ERROR")):
            say(line[:300])
    if proc.wait(timeout=PIP_TIMEOUT) != 0:
        errors = [ln for ln in lines if ln.startswith("ERROR")] or lines[-3:]
        raise RuntimeError("; ".join(errors)[-1500:])


def _build_into(final: Path, make: Callable[[Path], None]) -> None:
    """Build a folder with ``make(tmp)`` beside ``final`` and rename it into place (under ``final``'s lock)."""
    for stale in final.parent.glob(f".build-{final.name}-*"):  # a killed build's leftovers (we hold the lock)
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".build-{final.name}-", dir=final.parent))
    try:
        make(tmp)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@dataclass(frozen=True)
class Environment:
    """A built environment: its folder, its interpreter's version and what is installed in it."""

    root: Path
    python_version: str
    packages: dict[str, str]

    @property
    def python(self) -> str:
        return str(self.root / "bin" / "python")

    def _to_install(self, entries: list[str]) -> list[str]:
        """The pinned entries; an unpinned one is fine only when installed already (pip: already satisfied)."""
        have = {_norm(n) for n in self.packages}
        unpinned = [e for e in entries if not _PIN.match(e) and _norm(e) not in have]
        if unpinned:
            raise ModuleError(f"--additional-python-modules: {', '.join(unpinned)} has no pinned version and is not "
                              f"in the Python {self.python_version} runtime; give it as name==version (the local "
                              "cloud installs pinned modules only, so a run is reproducible)")
        return [e for e in entries if _PIN.match(e)]

    def overlay(self, spec: str, say: Callable[[str], None]) -> Path | None:
        """The folder to put on ``PYTHONPATH`` for ``--additional-python-modules`` ``spec`` (None when empty).

        Each entry must be ``name==version`` (or name a module the environment has). Built once per spec
        (cached beside the environment) with pip ``--target``, constrained to the versions installed in the
        environment except for the named modules (unconstrained when those need newer dependencies), so that
        it holds what Glue's ``pip install`` would change.

        Raises
        ------
        ModuleError
            An entry is not pinned, or pip cannot install it (pip's own error in the message).
        """
        entries = self._to_install([s.strip() for s in spec.split(",") if s.strip()])
        if not entries:
            return None
        digest = hashlib.sha256(json.dumps(sorted(entries)).encode()).hexdigest()[:16]
        final = self.root.parent / "overlays" / f"{self.root.name}-{digest}"
        if final.is_dir():
            return final
        named = {_norm(m.group(1)) for m in map(_PIN.match, entries) if m}
        with _file_lock(final.parent / f"{final.name}.lock"):
            if final.is_dir():
                return final
            say(f"installing --additional-python-modules {', '.join(entries)} (once per spec)")

            def make(tmp: Path) -> None:
                constraints = tmp / ".constraints.txt"
                constraints.write_text("".join(f"{n}=={v}\n" for n, v in self.packages.items()
                                               if _norm(n) not in named and n not in ("pip", "setuptools")))
                try:  # keep what the runtime has where the modules allow it...
                    _pip(self.python, ["--target", str(tmp), "-c", str(constraints), *entries], say)
                except RuntimeError:  # ...else let pip upgrade their dependencies too, as Glue's pip does
                    shutil.rmtree(tmp)
                    tmp.mkdir()
                    try:
                        _pip(self.python, ["--target", str(tmp), *entries], say)
                    except RuntimeError as exc:
                        raise ModuleError(f"--additional-python-modules: could not install {', '.join(entries)} "
                                          f"for Python {self.python_version}: {exc}") from None
                constraints.unlink(missing_ok=True)

            _build_into(final, make)
        return final


def _inventory(python: str) -> dict[str, Any]:
    out = subprocess.run([python, "-c", _INVENTORY], capture_output=True, text=True, timeout=120, check=True)
    return dict(json.loads(out.stdout))


def environment_dir(pins: RuntimePins, interp: Interpreter, cache: Path) -> Path:
    """Where the environment of ``pins`` on ``interp`` lives: named after a hash of everything it is built from."""
    key = json.dumps({"builder": BUILDER_VERSION, "python": interp.version, "machine": platform.machine(),
                      "system": platform.system(), "packages": sorted(pins.packages)}, sort_keys=True)
    return cache / f"{pins.name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def ensure_environment(pins: RuntimePins, interp: Interpreter, cache: Path,
                       say: Callable[[str], None]) -> tuple[Environment, bool]:
    """The environment of ``pins`` on ``interp`` in ``cache``, built now if missing; (it, whether built now)."""
    final = environment_dir(pins, interp, cache)
    built = False
    if not (final / MARKER).exists():
        with _file_lock(cache / f"{final.name}.lock"):
            if not (final / MARKER).exists():
                started = time.monotonic()
                say(f"building {final} with Python {interp.version} ({interp.path}): pip install "
                    f"{' '.join(pins.packages)} (once; later starts reuse it)")

                def make(tmp: Path) -> None:
                    subprocess.run([interp.path, "-m", "venv", str(tmp)], check=True, capture_output=True,
                                   timeout=300)
                    _pip(str(tmp / "bin" / "python"), list(pins.packages), say)
                    (tmp / MARKER).write_text(json.dumps({**_inventory(str(tmp / "bin" / "python")),
                                                          "pins": list(pins.packages), "source": pins.source}))

                _build_into(final, make)
                built = True
                say(f"built {final.name} in {time.monotonic() - started:.1f} s")
    data = json.loads((final / MARKER).read_text())
    return Environment(root=final, python_version=data["python"], packages=dict(data["packages"])), built


@dataclass(frozen=True)
class Resolved:
    """What runs a runtime's code: the pinned environment, or the daemon's Python and why (``fallback``)."""

    runtime: str
    python: str
    python_version: str
    pins: dict[str, str]  # the pinned packages -> the versions this interpreter has
    environment: Environment | None = None
    fallback: str | None = None

    def banner(self) -> str:
        """One line for a run's log: what it runs on."""
        libs = ", ".join(f"{n} {v}" for n, v in self.pins.items())
        if self.fallback:
            return (f"[etl-kit local cloud] WARNING: runtime {self.runtime} is NOT emulated for this run: "
                    f"{self.fallback}; it runs on the daemon's Python {self.python_version} ({libs})")
        return f"[etl-kit local cloud] runtime {self.runtime}: Python {self.python_version}, pinned {libs}"

    def overlay(self, spec: str, say: Callable[[str], None]) -> Path | None:
        """See :meth:`Environment.overlay`; in a fallback, an overlay on the daemon's own environment."""
        env = self.environment or Environment(root=_daemon_root(), python_version=self.python_version,
                                              packages=_installed_here())
        return env.overlay(spec, say)

    def as_dict(self) -> dict[str, Any]:
        return {"python": self.python_version, "pinned": self.fallback is None, "packages": self.pins,
                "environment": str(self.environment.root) if self.environment else None,
                "fallback": self.fallback}


def _daemon_root() -> Path:
    """A folder standing for the daemon's own environment in the runtime cache (its overlays go beside it)."""
    digest = hashlib.sha256(sys.prefix.encode()).hexdigest()[:16]
    return cache_root() / f"daemon-python-{digest}"


def _installed_here() -> dict[str, str]:
    import importlib.metadata as md

    return {(d.metadata["Name"] or "").lower(): d.version for d in md.distributions()}


@dataclass
class RuntimeTable(Provider):
    """Every pinned runtime, resolved once (in the background from :meth:`start`) and reported in the health."""

    daemon_python: str = field(default_factory=lambda: sys.executable)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    name: str = "runtimes"
    _futures: dict[str, Future[Resolved]] = field(default_factory=dict)
    _pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="runtime"))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _counts: dict[str, int] = field(default_factory=lambda: {"built": 0, "reused": 0})
    _building: set[str] = field(default_factory=set)  # runtimes whose environment pip is building right now

    def start(self) -> None:
        """Start resolving (finding, building) every pinned runtime in the background."""
        for pins in PINNED:
            self._future(pins)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def for_glue(self, python_version: str | None, stop: Callable[[], bool] = lambda: False) -> Resolved:
        """The runtime of a Python shell job with ``Command.PythonVersion`` (waits while it is built)."""
        if (python_version or "3.9") in ("3", "3.9"):  # "3" is the API's default, which Glue runs as 3.9
            return self._wait(self._future(GLUE_PYTHONSHELL_39), stop)
        return self._daemon(f"glue-pythonshell-{python_version}", {},
                            f"no pinned runtime for Python shell {python_version} (etl_localcloud/runtimes.py "
                            "pins 3.9 only)")

    def for_lambda(self, runtime: str, stop: Callable[[], bool] = lambda: False) -> Resolved:
        """The runtime of a function declared with ``Runtime=runtime`` (waits while it is built)."""
        pins = LAMBDA_RUNTIMES.get(runtime)
        if pins is None:
            known = ", ".join(LAMBDA_RUNTIMES)
            return self._daemon(f"lambda-{runtime}", {},
                                f"no pinned runtime for {runtime} (etl_localcloud/runtimes.py pins {known})")
        return self._wait(self._future(pins), stop)

    def health(self) -> dict[str, Any]:
        table: dict[str, Any] = {}
        pending = []
        with self._lock:
            futures = dict(self._futures)
            counts = dict(self._counts)
            building = sorted(self._building)
        for name, fut in futures.items():
            if fut.done() and not fut.cancelled():
                table[name] = fut.result().as_dict()
            else:
                pending.append(name)
                table[name] = {"building": name in building}
        return {"ok": True, **counts, "pending": pending, "building": building,
                "cache": str(cache_root(self.environ)), "runtimes": table}

    # -- internals ---------------------------------------------------------------------------------
    def _future(self, pins: RuntimePins) -> Future[Resolved]:
        with self._lock:
            if pins.name not in self._futures:
                self._futures[pins.name] = self._pool.submit(self._resolve, pins)
            return self._futures[pins.name]

    @staticmethod
    def _wait(fut: Future[Resolved], stop: Callable[[], bool]) -> Resolved:
        while True:
            with contextlib.suppress(TimeoutError):
                return fut.result(timeout=0.2)
            if stop():
                raise InterruptedError("stopped while its runtime was being built")

    def _daemon(self, runtime: str, pins: dict[str, str], why: str) -> Resolved:
        here = _installed_here()
        versions = {n: here.get(n.lower(), "not installed") for n in pins}
        return Resolved(runtime=runtime, python=self.daemon_python, python_version=platform.python_version(),
                        pins=versions, fallback=why)

    def _resolve(self, pins: RuntimePins) -> Resolved:
        pinned = {r.partition("==")[0]: r.partition("==")[2] for r in pins.packages}
        if self.environ.get(FORCE_VAR) == "daemon":
            return self._daemon(pins.name, pinned, f"{FORCE_VAR}=daemon forces the daemon's Python")
        interp = find_interpreter(pins.python, self.environ)
        if interp is None:
            where = SEARCH_PATH_VAR if SEARCH_PATH_VAR in self.environ else "PATH"
            why = (f"python{pins.python} was not found on {where} or through pyenv; install Python {pins.python} "
                   f"(e.g. `pyenv install {pins.python}`)")
            log.warning("runtime %s: %s; its runs use the daemon's Python", pins.name, why)
            return self._daemon(pins.name, pinned, why)

        def say(line: str) -> None:  # ensure_environment says something only when it builds
            with self._lock:
                self._building.add(pins.name)
            log.info("runtime %s: %s", pins.name, line)

        try:
            env, built = ensure_environment(pins, interp, cache_root(self.environ), say)
        except Exception as exc:
            why = f"building its environment with pip failed: {exc}"
            log.error("runtime %s: %s; its runs use the daemon's Python", pins.name, why)
            return self._daemon(pins.name, pinned, why)
        finally:
            with self._lock:
                self._building.discard(pins.name)
        with self._lock:
            self._counts["built" if built else "reused"] += 1
        versions = {n: env.packages.get(n.lower(), "not installed") for n in pinned}
        log.info("runtime %s: Python %s at %s (%s)", pins.name, env.python_version, env.root,
                 "built now" if built else "reused")
        return Resolved(runtime=pins.name, python=env.python, python_version=env.python_version, pins=versions,
                        environment=env)

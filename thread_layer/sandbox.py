"""Sandboxed worker processes: hard limits, isolation, and the watchdog that enforces them.

Every execution's worker process is started here (``thread_layer.sandbox_worker`` is its entry):

- **Limits** (:class:`Limits`): ``setrlimit`` in the child before it executes anything (address
  space, CPU seconds, open files, size of a written file, processes when it runs as a uid of its
  own), a cgroup v2 group where one can be created (``memory.max``/``pids.max`` when those
  controllers are delegated; always ``cgroup.kill`` and ``cpu.stat``), and a :class:`Watchdog` in
  the supervising process that samples the group's resident memory, CPU time, process count,
  scratch bytes and wall time, and kills the whole group when one is over.
- **Isolation**: bubblewrap (``bwrap``) with new network, PID, IPC and mount namespaces, where the
  process sees only the code and libraries (read-only) and its scratch folder (writable); without
  bwrap a new network namespace through ``unshare(2)``; an unprivileged uid of its own when the
  server runs as root (``setpriv`` inside bwrap, ``setuid`` otherwise). What works is detected at
  start-up (:func:`detect`) and reported (:class:`SandboxReport`); ``SANDBOX=strict`` refuses to
  run when isolation is not complete.

The child and the supervisor speak newline-delimited JSON over a socket pair: nothing the sandboxed
process sends is unpickled.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

log = logging.getLogger("trainyard.sandbox")

MB = 1024 * 1024
CLONE_NEWNET = 0x40000000
#: the uids executions run as (one free uid per running execution) when the server is root
UID_BASE, UID_COUNT = 61000, 4000
CODE_ROOT = Path(__file__).resolve().parents[1]


# -- limits ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LimitSpec:
    """One limit: its field, setting names, default, install-wide ceiling, and its words."""

    name: str
    unit: str
    default: int
    ceiling: int
    minimum: int
    words: str          # what it bounds, for the docs and the admin page
    enforced_by: str    # which mechanisms enforce it

    @property
    def setting(self) -> str:
        return f"EXECUTION_{self.name.upper()}"

    @property
    def ceiling_setting(self) -> str:
        return f"MAX_EXECUTION_{self.name.upper()}"


LIMIT_SPECS: tuple[LimitSpec, ...] = (
    LimitSpec("memory_mb", "MB", 4096, 65536, 64, "resident memory of all its processes",
              "watchdog (sum of RSS), cgroup memory.max where delegated"),
    LimitSpec("address_space_mb", "MB", 16384, 262144, 256,
              "virtual address space of each of its processes",
              "RLIMIT_AS (an allocation beyond it fails with MemoryError)"),
    LimitSpec("cpu_seconds", "s", 21600, 604800, 1, "CPU time of all its processes",
              "RLIMIT_CPU per process, watchdog over the sum"),
    LimitSpec("wall_seconds", "s", 21600, 604800, 1, "wall-clock time from its start",
              "watchdog"),
    LimitSpec("processes", "", 64, 4096, 4, "processes and threads at once",
              "RLIMIT_NPROC (own uid), cgroup pids.max where delegated, watchdog count"),
    LimitSpec("open_files", "", 1024, 65536, 64, "open files of each of its processes",
              "RLIMIT_NOFILE"),
    LimitSpec("written_mb", "MB", 10240, 1048576, 1,
              "bytes written to its scratch folder beyond its staged inputs",
              "RLIMIT_FSIZE per file, watchdog over the scratch folder"),
)
SPEC_OF = {spec.name: spec for spec in LIMIT_SPECS}


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 4096
    address_space_mb: int = 16384
    cpu_seconds: int = 21600
    wall_seconds: int = 21600
    processes: int = 64
    open_files: int = 1024
    written_mb: int = 10240

    @classmethod
    def from_settings(cls, settings) -> Limits:
        return cls(**{spec.name: int(settings.get(spec.setting, spec.default))
                      for spec in LIMIT_SPECS})

    @classmethod
    def ceiling_from_settings(cls, settings) -> Limits:
        return cls(**{spec.name: int(settings.get(spec.ceiling_setting, spec.ceiling))
                      for spec in LIMIT_SPECS})

    def with_overrides(self, overrides: dict | None) -> Limits:
        known = {k: int(v) for k, v in (overrides or {}).items()
                 if k in SPEC_OF and v is not None}
        return replace(self, **known)

    def capped(self, ceiling: Limits) -> Limits:
        return Limits(**{f.name: min(getattr(self, f.name), getattr(ceiling, f.name))
                         for f in fields(self)})

    def to_dict(self) -> dict:
        return asdict(self)


def size_words(mb: int) -> str:
    """``4096`` -> ``"4 GB"``, ``200`` -> ``"200 MB"``."""
    if mb >= 1024 and mb % 1024 == 0:
        return f"{mb // 1024} GB"
    if mb >= 1024:
        return f"{mb / 1024:.1f} GB"
    return f"{mb} MB"


def seconds_words(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


# -- detection ---------------------------------------------------------------------------------

@dataclass
class SandboxReport:
    """What isolation this machine gives executions (found once, at start-up)."""

    mode: str = "auto"                 # auto | strict | off
    bwrap: str | None = None           # the bwrap used, when it works
    setpriv: str | None = None
    network: str | None = None         # "bwrap" | "unshare" | None
    files: str | None = None           # "bwrap" | None
    user: str | None = None            # "uid 61000-64999" | "not root" | None
    cgroup: str | None = None          # the cgroup v2 folder executions' groups are made in
    cgroup_controllers: list[str] = field(default_factory=list)
    rlimits: bool = True
    notes: list[str] = field(default_factory=list)   # why something is not active

    @property
    def isolated(self) -> bool:
        return bool(self.network and self.files and self.user)

    @property
    def active(self) -> bool:
        """Anything beyond limits (the network, files or user isolation)."""
        return self.mode != "off" and bool(self.network or self.files)

    def refusal(self) -> str | None:
        """Why ``SANDBOX=strict`` refuses to run executions here (None: it does not)."""
        if self.mode != "strict" or self.isolated:
            return None
        missing = [name for name, value in (("network", self.network), ("files", self.files),
                                            ("user", self.user)) if not value]
        return (f"SANDBOX=strict and this server cannot isolate executions ({', '.join(missing)} "
                f"isolation not available: {'; '.join(self.notes) or 'see the admin page'}); "
                "the execution waits until an administrator fixes the sandbox or changes "
                "SANDBOX.")

    def summary(self) -> str:
        if self.mode == "off":
            return "Sandbox off (SANDBOX=off): executions run with limits only, no isolation."
        parts = [f"network: {self.network or 'NOT isolated'}",
                 f"files: {self.files or 'NOT isolated'}",
                 f"user: {self.user or 'NOT separate'}",
                 f"cgroup: {self.cgroup or 'none'}"
                 + (f" ({', '.join(self.cgroup_controllers)})" if self.cgroup_controllers else "")]
        return f"Sandbox {self.mode}: " + ", ".join(parts) + "; rlimits and watchdog: on."

    def to_dict(self) -> dict:
        doc = asdict(self)
        doc["isolated"] = self.isolated
        doc["summary"] = self.summary()
        return doc


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _enter_netns() -> None:
    if _libc().unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed")


def _probe(argv: list[str], preexec=None, timeout: float = 30) -> tuple[bool, str]:
    try:
        done = subprocess.run(argv, preexec_fn=preexec, capture_output=True, text=True,
                              timeout=timeout, env=_child_env(Path("/tmp")), cwd="/")
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"{type(exc).__name__}: {exc}"
    return done.returncode == 0, (done.stderr or done.stdout).strip()[-300:]


def _cgroup_base() -> tuple[Path | None, str]:
    """The cgroup v2 folder of this process (where executions' groups go), or why none."""
    mount = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) > 2 and parts[2] == "cgroup2":
                mount = Path(parts[1])
                break
    if mount is None:
        return None, "no cgroup v2 hierarchy is mounted"
    own = "/"
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                own = line[3:] or "/"
    base = mount / own.lstrip("/")
    probe = base / f"trainyard-probe-{os.getpid()}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        return None, f"cannot create a cgroup in {base} ({exc.strerror})"
    return base, ""


_DETECTED: dict[tuple, SandboxReport] = {}


def detect(mode: str = "auto", *, bwrap: bool = True, python: str | None = None,
           fresh: bool = False) -> SandboxReport:
    """Find what isolation works here, by trying it (a short ``python -c`` in each); found once
    per process and mode (``fresh`` looks again)."""
    key = (mode, bwrap, python)
    if fresh or key not in _DETECTED:
        _DETECTED[key] = _detect(mode, bwrap=bwrap, python=python)
    return replace(_DETECTED[key], notes=list(_DETECTED[key].notes),
                   cgroup_controllers=list(_DETECTED[key].cgroup_controllers))


def _detect(mode: str, *, bwrap: bool, python: str | None) -> SandboxReport:
    report = SandboxReport(mode=mode)
    if mode == "off":
        report.notes.append("SANDBOX=off")
        return report
    python = python or sys.executable
    root = os.geteuid() == 0
    report.setpriv = shutil.which("setpriv") if root else None
    check = [python, "-c", "import thread_layer.sandbox_worker"]
    found = shutil.which("bwrap") if bwrap else None
    if not bwrap:
        report.notes.append("bwrap turned off (SANDBOX_BWRAP=false)")
    elif not found:
        report.notes.append("bwrap is not installed (apt-get install bubblewrap)")
    if found:
        uid = UID_BASE if root and report.setpriv else None
        scratch = Path("/tmp")
        argv = bwrap_argv(found, scratch, uid=uid, setpriv=report.setpriv) + check
        ok, why = _probe(argv)
        if ok:
            report.bwrap, report.network, report.files = found, "bwrap", "bwrap"
            if root and uid is not None:
                report.user = f"uid {UID_BASE}-{UID_BASE + UID_COUNT - 1}"
        else:
            report.notes.append(f"bwrap does not work here: {why}")
    if not report.network:
        ok, why = _probe(check, preexec=_enter_netns)
        if ok:
            report.network = "unshare"
        else:
            report.notes.append(f"no network namespace (unshare -n): {why}")
    if not report.user:
        if not root:
            report.user = "not root"
        elif not report.bwrap:
            def drop():
                os.setgroups([])
                os.setgid(UID_BASE)
                os.setuid(UID_BASE)
            ok, why = _probe(check, preexec=drop)
            if ok:
                report.user = f"uid {UID_BASE}-{UID_BASE + UID_COUNT - 1}"
            else:
                report.notes.append("the interpreter or the code is not readable by an "
                                    f"unprivileged uid: {why}")
        else:
            report.notes.append("setpriv is missing: executions would run as root")
    if not report.files and not report.bwrap:
        report.notes.append("files are not isolated without bwrap")
    base, why = _cgroup_base() if root else (None, "not root: no cgroup of its own")
    if base is not None:
        report.cgroup = str(base)
        with contextlib.suppress(OSError):
            delegated = (base / "cgroup.subtree_control").read_text().split()
            available = (base / "cgroup.controllers").read_text().split()
            for controller in ("memory", "pids"):
                if controller in delegated:
                    report.cgroup_controllers.append(controller)
                elif controller in available:
                    with contextlib.suppress(OSError):
                        (base / "cgroup.subtree_control").write_text(f"+{controller}")
                        report.cgroup_controllers.append(controller)
        if "memory" not in report.cgroup_controllers:
            report.notes.append("cgroup v2 has no memory controller here: memory is enforced "
                                "by the watchdog and RLIMIT_AS")
    else:
        report.notes.append(why)
    return report


# -- launching ---------------------------------------------------------------------------------

def _python_roots() -> list[Path]:
    """What the interpreter and its libraries need, read-only: the venv, the base install."""
    roots = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(),
             Path(sys.executable).resolve().parents[1], CODE_ROOT.resolve()}
    kept = sorted(root for root in roots if root.exists() and not str(root).startswith("/usr"))
    # one bind for a folder and what lies in it
    return [root for root in kept if not any(other != root and other in root.parents
                                             for other in kept)]


def _parents(path: Path) -> list[Path]:
    return [p for p in reversed(path.parents) if str(p) != "/"]


def bwrap_argv(bwrap: str, scratch: Path, *, uid: int | None, setpriv: str | None,
               shm_mb: int = 64) -> list[str]:
    """The bwrap command line: only /usr (and its /lib, /bin links), the interpreter, the
    code, read-only, and ``scratch`` writable; new network/PID/IPC/UTS namespaces."""
    argv = [bwrap, "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session",
            "--ro-bind", "/usr", "/usr"]
    for name in ("lib", "lib64", "bin", "sbin", "lib32"):
        target = Path("/") / name
        if target.is_symlink():
            argv += ["--symlink", os.readlink(target), str(target)]
        elif target.is_dir():
            argv += ["--ro-bind", str(target), str(target)]
    for etc in ("/etc/ld.so.cache", "/etc/localtime", "/etc/ssl/certs"):
        if os.path.exists(etc):
            argv += ["--ro-bind", etc, etc]
    made: set[str] = set()
    binds: list[tuple[str, Path]] = [("--ro-bind", root) for root in _python_roots()]
    binds.append(("--bind", scratch))
    for _option, path in binds:
        for parent in _parents(path):
            if str(parent) not in made and not str(parent).startswith("/usr"):
                made.add(str(parent))
                argv += ["--perms", "0755", "--dir", str(parent)]
    for option, path in binds:
        argv += [option, str(path), str(path)]
    argv += ["--dev", "/dev", "--perms", "1777", "--size", str(shm_mb * MB), "--tmpfs", "/dev/shm",
             "--proc", "/proc", "--chdir", str(scratch), "--remount-ro", "/"]
    if uid is not None and setpriv:
        argv += [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                 "--inh-caps=-all", "--"]
    return argv


def _child_env(scratch: Path, threads: int = 1) -> dict[str, str]:
    """A clean environment: none of the server's variables (its secrets) reach the child."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(scratch),
           "TMPDIR": str(scratch / "tmp"), "LANG": os.environ.get("LANG", "C.UTF-8"),
           "PYTHONPATH": str(CODE_ROOT), "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONUNBUFFERED": "1", "MPLCONFIGDIR": str(scratch / "tmp"),
           "JOBLIB_TEMP_FOLDER": str(scratch / "tmp")}
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    return env


def _uid_in_use(uid: int) -> bool:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    return True
    return False


def pick_uid(taken: set[int]) -> int:
    """A uid of the execution range that no process uses (so RLIMIT_NPROC bounds this
    execution alone)."""
    for _attempt in range(50):
        uid = UID_BASE + random.randrange(UID_COUNT)
        if uid not in taken and not _uid_in_use(uid):
            return uid
    raise RuntimeError("No free sandbox uid.")


@dataclass
class Sandboxed:
    """A started sandboxed worker process and what watches it."""

    proc: subprocess.Popen
    sock: socket.socket
    scratch: Path
    limits: Limits
    cgroup: Path | None
    uid: int | None
    started: float
    staged_mb: float = 0.0  # what was in the scratch folder before it started (its inputs)
    buffer: bytes = b""
    usage: dict = field(default_factory=lambda: {"peak_memory_mb": 0.0, "cpu_seconds": 0.0,
                                                 "wall_seconds": 0.0, "written_mb": 0.0,
                                                 "processes": 0})

    def messages(self, timeout: float, max_bytes: int = 64 * MB) -> list | None:
        """The messages that arrived within ``timeout`` (None: the child closed its end)."""
        import select

        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return []
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            return None
        self.buffer += chunk
        if len(self.buffer) > max_bytes:
            raise ValueError("The worker sent a message larger than 64 MB.")
        *lines, self.buffer = self.buffer.split(b"\n")
        out = []
        for line in lines:
            if line.strip():
                try:
                    out.append(tuple(json.loads(line)))
                except ValueError:
                    raise ValueError("The worker sent a message that is not JSON.") from None
        return out

    def kill(self) -> None:
        """Kill every process of the execution: its cgroup, its session, the process."""
        if self.cgroup is not None:
            with contextlib.suppress(OSError):
                (self.cgroup / "cgroup.kill").write_text("1")
        for pid in self.pids():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            self.proc.kill()

    def pids(self) -> set[int]:
        """The execution's processes: its cgroup's, else the session's and the descendants."""
        if self.cgroup is not None:
            with contextlib.suppress(OSError, ValueError):
                found = {int(p) for p in (self.cgroup / "cgroup.procs").read_text().split()}
                if found or self.proc.poll() is not None:
                    return found
        return _descendants(self.proc.pid)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        if self.proc.poll() is None:
            self.kill()
            self.proc.wait()
        if self.cgroup is not None:
            for _attempt in range(50):
                try:
                    self.cgroup.rmdir()
                    break
                except OSError:
                    time.sleep(0.05)


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    session_of_root = None
    sessions: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                rest = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid, sid = int(entry.name), int(rest[1]), int(rest[3])
        children.setdefault(ppid, []).append(pid)
        sessions[pid] = sid
    session_of_root = sessions.get(root)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        todo.extend(children.get(pid, []))
    if session_of_root == root:
        found.update(pid for pid, sid in sessions.items() if sid == root)
    return found if root in sessions else set()


def _pss_mb(pid: int) -> float | None:
    """The proportional set size of ``pid`` (shared pages divided among their sharers, so
    forked children are not counted twice), or None if it cannot be read."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _rss_and_cpu(pids: set[int]) -> tuple[float, float, int]:
    """Sum of resident MB (proportional), CPU seconds and threads of ``pids``."""
    tick = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")
    rss = cpu = 0.0
    threads = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                rest = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu += (int(rest[11]) + int(rest[12])) / tick
        threads += int(rest[17])
        pss = _pss_mb(pid)
        rss += pss if pss is not None else int(rest[21]) * page / MB
    return rss, cpu, threads


def folder_mb(folder: Path) -> float:
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total / MB


def launch(module: str, payload: dict, *, limits: Limits, report: SandboxReport, scratch: Path,
           threads: int = 1, taken_uids: set[int] | None = None) -> Sandboxed:
    """Start ``python -m module FD`` sandboxed as ``report`` allows, under ``limits``, and send
    it ``payload`` (JSON) on the socket FD."""
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "tmp").mkdir(exist_ok=True)
    staged_mb = folder_mb(scratch)
    root = os.geteuid() == 0
    uid = pick_uid(taken_uids or set()) if report.user and report.user.startswith("uid") \
        and report.mode != "off" else None
    if uid is not None:
        for dirpath, dirs, files in os.walk(scratch):
            for name in [dirpath, *(os.path.join(dirpath, n) for n in dirs + files)]:
                os.lchown(name, uid, uid)
    cgroup = None
    if report.cgroup and root:
        cgroup = Path(report.cgroup) / f"trainyard-{scratch.name}"
        try:
            cgroup.mkdir(exist_ok=True)
            if "memory" in report.cgroup_controllers:
                (cgroup / "memory.max").write_text(str(limits.memory_mb * MB))
                with contextlib.suppress(OSError):
                    (cgroup / "memory.swap.max").write_text("0")
            if "pids" in report.cgroup_controllers:
                (cgroup / "pids.max").write_text(str(limits.processes))
        except OSError as exc:
            log.warning("Could not make the execution's cgroup (%s); the watchdog alone "
                        "bounds it", exc)
            cgroup = None
    parent, child = socket.socketpair()
    isolate = report.mode != "off"
    use_bwrap = isolate and report.bwrap is not None
    netns = isolate and not use_bwrap and report.network == "unshare"
    procs_file = str(cgroup / "cgroup.procs") if cgroup else None
    nproc_extra = 4  # bwrap's own processes, setpriv

    def preexec() -> None:  # in the child, before exec: nothing of the user's has run yet
        if procs_file:
            with open(procs_file, "w") as procs:
                procs.write("0")
        resource.setrlimit(resource.RLIMIT_AS, (limits.address_space_mb * MB,) * 2)
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files,) * 2)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.written_mb * MB,) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if uid is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes + nproc_extra,) * 2)
        if netns:
            _enter_netns()
        if uid is not None and not use_bwrap:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)

    command = [sys.executable, "-m", module, str(child.fileno())]
    if use_bwrap:
        command = bwrap_argv(report.bwrap, scratch, uid=uid, setpriv=report.setpriv) + command
    proc = subprocess.Popen(command, preexec_fn=preexec, pass_fds=(child.fileno(),),
                            start_new_session=True, env=_child_env(scratch, threads),
                            cwd=str(scratch), stdin=subprocess.DEVNULL)
    child.close()
    started = time.monotonic()
    sandboxed = Sandboxed(proc=proc, sock=parent, scratch=scratch, limits=limits, cgroup=cgroup,
                          uid=uid, started=started, staged_mb=staged_mb)
    try:
        parent.sendall(json.dumps(payload, default=str).encode() + b"\n")
    except OSError:
        pass  # it died at once: its exit code says why
    return sandboxed


# -- the watchdog ------------------------------------------------------------------------------

@dataclass
class Breach:
    """A limit an execution went over: which, its value, and what was measured."""

    limit: str
    value: int
    measured: float

    def words(self) -> str:
        spec = SPEC_OF[self.limit]
        if self.limit == "memory_mb" or self.limit == "address_space_mb":
            what = f"used more than {size_words(self.value)} of memory"
        elif self.limit == "cpu_seconds":
            what = f"used more than {seconds_words(self.value)} of CPU time"
        elif self.limit == "wall_seconds":
            what = f"ran longer than {seconds_words(self.value)}"
        elif self.limit == "processes":
            what = f"started more than {self.value} processes or threads"
        elif self.limit == "open_files":
            what = f"opened more than {self.value} files"
        else:
            what = f"wrote more than {size_words(self.value)}"
        del spec
        return what


class Watchdog:
    """Samples a sandboxed execution and names the first limit it is over."""

    def __init__(self, sandboxed: Sandboxed, *, every: float = 0.1, disk_every: float = 0.5):
        self.box = sandboxed
        self.every, self.disk_every = every, disk_every
        self._last_disk = 0.0

    def check(self) -> Breach | None:
        box, limits = self.box, self.box.limits
        now = time.monotonic()
        wall = now - box.started
        box.usage["wall_seconds"] = round(wall, 2)
        pids = box.pids()
        rss, cpu, threads = _rss_and_cpu(pids)
        if box.cgroup is not None:
            with contextlib.suppress(OSError, ValueError):
                for line in (box.cgroup / "cpu.stat").read_text().splitlines():
                    if line.startswith("usage_usec"):
                        cpu = max(cpu, int(line.split()[1]) / 1e6)
            with contextlib.suppress(OSError, ValueError):
                rss = max(rss, int((box.cgroup / "memory.current").read_text()) / MB)
        usage = box.usage
        usage["peak_memory_mb"] = round(max(usage["peak_memory_mb"], rss), 1)
        usage["cpu_seconds"] = round(max(usage["cpu_seconds"], cpu), 2)
        usage["processes"] = max(usage["processes"], threads)
        if now - self._last_disk >= self.disk_every:
            self._last_disk = now
            written = folder_mb(box.scratch) - box.staged_mb
            usage["written_mb"] = round(max(usage["written_mb"], written), 2)
        if threads > limits.processes + 4:
            return Breach("processes", limits.processes, threads)
        if rss > limits.memory_mb:
            return Breach("memory_mb", limits.memory_mb, rss)
        if usage["written_mb"] > limits.written_mb:
            return Breach("written_mb", limits.written_mb, usage["written_mb"])
        if cpu > limits.cpu_seconds:
            return Breach("cpu_seconds", limits.cpu_seconds, cpu)
        if wall > limits.wall_seconds:
            return Breach("wall_seconds", limits.wall_seconds, wall)
        return None

    def final(self) -> dict:
        """The usage once the process is gone (with the memory peak the cgroup saw)."""
        box = self.box
        if box.cgroup is not None:
            with contextlib.suppress(OSError, ValueError):
                peak = int((box.cgroup / "memory.peak").read_text()) / MB
                box.usage["peak_memory_mb"] = round(max(box.usage["peak_memory_mb"], peak), 1)
        box.usage["wall_seconds"] = round(time.monotonic() - box.started, 2)
        with contextlib.suppress(OSError):
            box.usage["written_mb"] = round(max(box.usage["written_mb"],
                                                folder_mb(box.scratch) - box.staged_mb), 2)
        return dict(box.usage)


def exit_breach(returncode: int | None, limits: Limits, usage: dict) -> Breach | None:
    """The limit a worker that died by a signal most likely hit (SIGXCPU, SIGXFSZ, SIGKILL by
    the cgroup's OOM killer)."""
    if returncode is None or returncode >= 0:
        return None
    sig = -returncode
    if sig == signal.SIGXCPU:
        return Breach("cpu_seconds", limits.cpu_seconds, usage.get("cpu_seconds", 0))
    if sig == signal.SIGXFSZ:
        return Breach("written_mb", limits.written_mb, usage.get("written_mb", 0))
    if sig == signal.SIGKILL and usage.get("peak_memory_mb", 0) >= 0.9 * limits.memory_mb:
        return Breach("memory_mb", limits.memory_mb, usage.get("peak_memory_mb", 0))
    return None

"""A throwaway systemd booted in systemd-nspawn, for tests that run the real units.

Decisions (the recipe and its traps are in SCHEDULING.md):

- The host's own OS is booted with `--volatile=yes`: the container's root is a tmpfs with the
  host's /usr mounted read-only, so nothing it writes outlives it and nothing of the host's
  /etc, /opt or /var leaks in. Whatever the units need from elsewhere is bound explicitly.
- `--register=no --keep-unit`: the host's PID 1 is not systemd here (no machined, no scope
  units to create). `systemd.mask=systemd-firstboot.service`: an empty /etc is a first boot,
  and firstboot would wait for a console answer.
- Each container gets its own machine name (nspawn keeps per-machine state under
  /run/systemd/nspawn/ by name, and several people's test runs may share one host).
- The container's systemd is the child of nspawn that is PID 1 in its own PID namespace
  (`NSpid` ends in 1). Commands run inside through `nsenter -a`, which needs no D-Bus on the host.
- Every wait has a deadline. Readiness is `systemctl is-system-running --wait`, retried until
  the container's manager answers; "degraded" counts as booted (a unit of the host's OS that
  fails in a container is not the units under test).
- Teardown always happens: SIGTERM to nspawn (it halts the container through SIGRTMIN+3),
  SIGKILL after a grace period (nspawn's child dies with it).
- `CannotBootError` (nspawn exited before the container's PID 1 existed) means this machine
  refuses containers (no privileges for namespaces or cgroups); a caller may skip on it.
  Anything that goes wrong once PID 1 exists is a failure of what is under test.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BOOTED = ("running", "degraded")
STOP_GRACE_SECONDS = 10.0


class CannotBootError(RuntimeError):
    """systemd-nspawn exited before the container's init started: the machine refuses containers."""


class BootError(RuntimeError):
    """The container's systemd started but did not finish booting in time."""


@dataclass(frozen=True)
class Bind:
    """A host path mounted into the container (read-only unless `writable`)."""

    source: Path
    target: str
    writable: bool = False

    def option(self) -> str:
        return f"--bind{'' if self.writable else '-ro'}={self.source}:{self.target}"


@dataclass(frozen=True)
class Machine:
    """A booted container: run commands in it, ask its systemd about units."""

    leader: int
    console: Path
    boot_seconds: float

    def run(self, *argv: str, timeout: float) -> subprocess.CompletedProcess[str]:
        """Run ARGV inside every namespace of the container (as its root); never raises on exit status.

        Raises:
            subprocess.TimeoutExpired: ARGV did not finish within `timeout` seconds.
        """
        return subprocess.run(["nsenter", "-t", str(self.leader), "-a", *argv],
                              capture_output=True, text=True, timeout=timeout, check=False)

    def systemctl(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return self.run("systemctl", "--no-pager", *args, timeout=timeout)

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        """`systemctl show` of PROPERTIES as a dict (values are systemd's strings)."""
        out = self.systemctl("show", unit, *(f"--property={p}" for p in properties)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, unit: str) -> str:
        """The unit's journal, for assertion messages."""
        return self.run("journalctl", "--no-pager", "-o", "short-monotonic", "-u", unit, timeout=15.0).stdout


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:  # the process ended while we looked
                continue
            if f"\nPPid:\t{pid}\n" in status:
                children.append(int(entry.name))
    return children


def _is_namespace_init(pid: int) -> bool:
    try:
        status = (Path("/proc") / str(pid) / "status").read_text()
    except OSError:
        return False
    nspid = next((line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), [])
    return len(nspid) > 1 and nspid[-1] == "1"


def _wait_for_leader(process: subprocess.Popen, console: Path, deadline: float) -> int:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CannotBootError(f"systemd-nspawn exited with status {process.returncode} before the "
                                  f"container started: {console.read_text(errors='replace').strip()[-2000:]}")
        leader = next((pid for pid in _children(process.pid) if _is_namespace_init(pid)), None)
        if leader is not None:
            return leader
        time.sleep(0.05)
    raise BootError(f"no container init appeared under systemd-nspawn (pid {process.pid}) in time")


def _wait_until_booted(machine: Machine, process: subprocess.Popen, deadline: float) -> None:
    state = ""
    while (left := deadline - time.monotonic()) > 0:
        if process.poll() is not None:
            raise BootError(f"systemd-nspawn exited with status {process.returncode} while booting: "
                            f"{machine.console.read_text(errors='replace').strip()[-2000:]}")
        try:
            answer = machine.systemctl("is-system-running", "--wait", timeout=left)
        except subprocess.TimeoutExpired:
            break
        lines = (answer.stdout.strip() or answer.stderr.strip()).splitlines()
        state = lines[-1] if lines else ""
        if state in BOOTED:
            return
        time.sleep(0.1)  # the manager is not up yet ("offline", no bus): ask again
    raise BootError(f"the container's systemd did not finish booting in time (last state {state!r}): "
                    f"{machine.console.read_text(errors='replace').strip()[-2000:]}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_GRACE_SECONDS)


@contextmanager
def boot(binds: Sequence[Bind], workdir: Path, *, timeout: float = 30.0) -> Iterator[Machine]:
    """Boot the host's systemd in a volatile container with BINDS; halt it on exit, whatever happened.

    The container's console goes to WORKDIR/console.log.

    Raises:
        CannotBootError: systemd-nspawn could not start a container on this machine.
        BootError: the container did not finish booting within `timeout` seconds.
    """
    console = workdir / "console.log"
    name = f"stockpipe-test-{uuid.uuid4().hex[:12]}"
    argv = ["systemd-nspawn", "--register=no", "--keep-unit", f"--machine={name}", "--directory=/",
            "--volatile=yes", "--boot", "--console=pipe", *(b.option() for b in binds),
            "systemd.mask=systemd-firstboot.service"]
    started = time.monotonic()
    deadline = started + timeout
    with console.open("wb") as out:
        # Its own session: a Ctrl-C meant for pytest reaches nspawn only through the teardown below.
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        leader = _wait_for_leader(process, console, deadline)
        _wait_until_booted(Machine(leader, console, 0.0), process, deadline)
        yield Machine(leader, console, time.monotonic() - started)
    finally:
        _stop(process)

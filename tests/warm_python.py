"""A ``python`` for the shell scripts under test (the workflow's steps) that starts in milliseconds.

The steps run ``.venv/bin/python -m harness ...`` and ``.venv/bin/python -c ...`` several times each; a fresh
interpreter spends about a second of CPU importing the harness (and matplotlib) before it does anything. Here
``.venv/bin/python`` is a small stdlib-only shim: it hands its arguments, working directory, environment and
standard input, output and error to a *warm* process, which imported those modules once, and which forks a child
for each command. The child takes over the shim's file descriptors, directory and environment and runs the command
(``-c CODE`` or ``-m MODULE``, as the interpreter would: ``__main__``, ``sys.argv``, ``SystemExit``, a traceback
and exit 1 for an uncaught exception); its exit status is the shim's. Any other form of command line
(a script path, other options) is handed to the real interpreter with ``execv``. So every command is still a
process of its own, with the exit status, output and files a real one gives, only without importing again.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

SHIM = """#!{python} -SE
import json, os, socket, sys
conn = socket.socket(socket.AF_UNIX)
conn.connect({socket!r})
request = json.dumps({{"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}}).encode()
socket.send_fds(conn, [len(request).to_bytes(8, "big") + request], [0, 1, 2])
reply = b""
while chunk := conn.recv(64):
    reply += chunk
sys.exit(int(reply) if reply.strip() else 255)
"""

SERVER = r"""
import builtins, importlib, json, os, runpy, signal, socket, sys, traceback

path, preload = sys.argv[1], sys.argv[2:]
for name in preload:
    importlib.import_module(name)
listener = socket.socket(socket.AF_UNIX)
listener.bind(path)
listener.listen(16)


def reap(signum, frame):
    # Each child sends its status back by the socket; waiting for it here only adds its CPU time to this
    # process's children (and so to the test run's), which ignoring SIGCHLD would drop.
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


signal.signal(signal.SIGCHLD, reap)
sys.stdout.write("ready\n")
sys.stdout.flush()


def run(argv):
    if len(argv) >= 2 and argv[0] == "-c":
        sys.argv = ["-c", *argv[2:]]
        exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__", "__builtins__": builtins})
    elif len(argv) >= 2 and argv[0] == "-m":
        sys.argv = [argv[1], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        os.execv(sys.executable, [sys.executable, *argv])  # not a form served here: the real interpreter


def serve(conn):
    data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    while len(data) < 8 or len(data) < 8 + int.from_bytes(data[:8], "big"):
        data += conn.recv(1 << 20)
    request = json.loads(data[8:])
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    code = 0
    try:
        run(request["argv"])
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    conn.sendall(str(code).encode())
    os._exit(code)


while True:
    conn, _ = listener.accept()
    if os.fork() == 0:
        listener.close()
        try:
            serve(conn)
        finally:
            os._exit(70)
    conn.close()
"""


@contextmanager
def warm_python(directory: Path, preload: Sequence[str]) -> Iterator[Path]:
    """A warm process that imported ``preload``, for the life of the block; yields the shim to install as
    ``.venv/bin/python`` (see :func:`install`)."""
    directory.mkdir(parents=True, exist_ok=True)
    sock = directory / "warm.sock"
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(sock), *preload], stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n", "the warm python did not start"
        shim = directory / "python"
        shim.write_text(SHIM.format(python=sys.executable, socket=str(sock)))
        shim.chmod(0o755)
        yield shim
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


def install(shim: Path, root: Path) -> None:
    """``root/.venv/bin/python`` is the shim."""
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    target = bin_dir / "python"
    target.unlink(missing_ok=True)
    target.symlink_to(shim)

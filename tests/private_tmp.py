"""Run a command with a private /tmp and/or hidden folders (in a new mount namespace: unshare --mount).

``python private_tmp.py [--tmp DIR --keep PATH] [--hide DIR...] -- COMMAND...``

* ``--tmp DIR``: DIR is bind-mounted on /tmp, so what the command writes to /tmp (ADIOS2's
  remote server writes fixed names there) lands in DIR; ``--keep PATH`` (below /tmp) stays
  visible at its own path.
* ``--hide DIR``: an empty tmpfs is mounted on DIR (a reader that must not see the data).

Used by tests/adios2_world.py; only ever run inside ``unshare --mount`` (private propagation).
"""

import ctypes
import os
import sys

MS_BIND = 4096
LIBC = ctypes.CDLL(None, use_errno=True)


def mount(source: str, target: str, fstype: str | None = None, flags: int = 0, data: str | None = None) -> None:
    """mount(2) itself: a ``/proc/self/fd/N`` source is the folder that descriptor holds."""
    if LIBC.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                  data.encode() if data else None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def main(argv: list[str]) -> None:
    cut = argv.index("--")
    opts, command = argv[:cut], argv[cut + 1:]
    tmp = opts[opts.index("--tmp") + 1] if "--tmp" in opts else None
    keep = opts[opts.index("--keep") + 1] if "--keep" in opts else None
    hide = opts[opts.index("--hide") + 1:] if "--hide" in opts else []
    if tmp:
        fd = None
        if keep and keep.startswith("/tmp/"):
            keep = "/tmp/" + keep.split("/")[2]  # the top folder of it in /tmp
            fd = os.open(keep, os.O_RDONLY | os.O_DIRECTORY)
        mount(tmp, "/tmp", flags=MS_BIND)
        if fd is not None:
            os.makedirs(keep, exist_ok=True)
            mount(f"/proc/self/fd/{fd}", keep, flags=MS_BIND)
            os.close(fd)
    for folder in hide:
        mount("none", folder, "tmpfs", data="size=1m")
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])

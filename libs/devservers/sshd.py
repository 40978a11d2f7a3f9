"""A real OpenSSH sshd on loopback that serves git over ssh, with throw-away keys."""

from __future__ import annotations

import os
import pwd
import shlex
import socket
import subprocess
from pathlib import Path

from libs.devservers.procs import ManagedProcess, Server, launch_on_free_port

__all__ = ["GitSshServer"]

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")


class GitSshServer(Server):
    """``sshd -D -e`` on ``127.0.0.1`` (a free port unless ``port`` is given) that lets the current
    user in with a generated key.

    ``workdir`` receives the config, a fresh ed25519 host key and client key, and a ``known_hosts``
    file for the host key; keys already in ``workdir`` are reused, so a restarted server keeps its
    host key. Clients are expected to check the host key: :meth:`git_env` does.
    """

    def __init__(self, workdir: Path, *, port: int | None = None, startup_timeout: float = 10.0) -> None:
        super().__init__()
        self.workdir = Path(workdir).resolve()
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.host = "127.0.0.1"
        self._startup_timeout = startup_timeout
        self._fixed_port = port
        self._port: int | None = None
        self.host_key_path = self.workdir / "ssh_host_ed25519_key"
        self.client_key_path = self.workdir / "client_ed25519"
        self.known_hosts_path = self.workdir / "known_hosts"
        self.config_path = self.workdir / "sshd_config"

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("GitSshServer has not been started")
        return self._port

    @property
    def client_private_key(self) -> str:
        """The client's private key (OpenSSH format), as a Flux ``identity`` secret would carry it."""
        return self.client_key_path.read_text()

    @property
    def client_public_key(self) -> str:
        return self.client_key_path.with_suffix(".pub").read_text().strip()

    @property
    def known_hosts(self) -> str:
        """One known_hosts line for this server: ``[127.0.0.1]:PORT ssh-ed25519 AAAA…``."""
        key_type, key = self.host_key_path.with_suffix(".pub").read_text().split()[:2]
        return f"[{self.host}]:{self.port} {key_type} {key}"

    def url_for(self, repo_path: Path) -> str:
        """``ssh://USER@127.0.0.1:PORT/abs/path/repo.git`` for a repository on this machine."""
        return f"ssh://{self.user}@{self.host}:{self.port}{Path(repo_path).resolve()}"

    def ssh_command(self, known_hosts_path: Path | None = None) -> str:
        """An ``ssh`` command line that logs in with the client key and always checks the host key."""
        known_hosts = known_hosts_path if known_hosts_path is not None else self.known_hosts_path
        return shlex.join(
            [
                "ssh",
                "-F",
                "/dev/null",
                "-i",
                str(self.client_key_path),
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                f"UserKnownHostsFile={known_hosts}",
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=10",
            ]
        )

    def git_env(self, known_hosts_path: Path | None = None) -> dict[str, str]:
        """Environment additions that make ``git`` use this server's client key and known_hosts."""
        return {"GIT_SSH_COMMAND": self.ssh_command(known_hosts_path)}

    def _generate_keys(self) -> None:
        for path, comment in (
            (self.host_key_path, "sluice-dev-host"),
            (self.client_key_path, "sluice-dev-client"),
        ):
            if path.exists():
                continue
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                check=True,
                capture_output=True,
            )

    def _write_config(self, port: int) -> list[str]:
        self.config_path.write_text(
            "\n".join(
                [
                    f"ListenAddress {self.host}:{port}",
                    f"HostKey {self.host_key_path}",
                    f"PidFile {self.workdir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.client_key_path.with_suffix('.pub')}",
                    "AuthenticationMethods publickey",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    f"AllowUsers {self.user}",
                    "StrictModes no",
                    "UsePAM no",
                    "UseDNS no",
                    "PrintMotd no",
                    "PermitUserEnvironment no",
                    "AllowTcpForwarding no",
                    "X11Forwarding no",
                    # Tests clone in parallel; the default (10:30:100) drops unauthenticated connections early.
                    "MaxStartups 200",
                    "MaxSessions 100",
                    "LogLevel INFO",
                    "",
                ]
            )
        )
        return [SSHD, "-D", "-e", "-f", str(self.config_path)]

    def _ready(self, process: ManagedProcess, port: int) -> bool:
        try:
            with socket.create_connection((self.host, port), timeout=0.5) as sock:
                return sock.recv(64).startswith(b"SSH-2.0-")
        except OSError:
            return False

    def _launch(self) -> ManagedProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            # sshd running as root insists on its privilege-separation directory.
            PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        self._generate_keys()
        process, port = launch_on_free_port(
            "sshd",
            self._write_config,
            ready=self._ready,
            log_path=self.workdir / "sshd.log",
            timeout=self._startup_timeout,
            port=self._fixed_port,
        )
        self._port = port
        self.known_hosts_path.write_text(self.known_hosts + "\n")
        return process

"""A local ClickHouse server on loopback, from the distribution's package, for tests and demos.

Most code paths use chDB (embedded, nothing to start); the sink's and dashboard's network
paths need a real server. Debian 12 ships ClickHouse 18.16 (`/usr/sbin/clickhouse-server`,
installed by `make setup` via infra/clickhouse/install.sh). `ClickHouseServer` renders a
minimal config (config.xml, users.xml next to this module) into its own `home`, runs the
server there as a plain process in its own session, and stops it through its pid file; it
never touches /etc/clickhouse-server or a system service.

    python -m infra.clickhouse.server up
    python -m infra.clickhouse.server status
    python -m infra.clickhouse.server down
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING
from urllib.request import urlopen
from xml.sax.saxutils import escape

from infra.errors import ClickHouseServerError
from infra.process import ManagedServer, cli_parser, display, run_cli

if TYPE_CHECKING:
    from clickhouse_driver import Client

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_TEMPLATE = Path(__file__).resolve().with_name("config.xml")
USERS_TEMPLATE = Path(__file__).resolve().with_name("users.xml")

_INSTALL_HINT = (
    "run `make setup` (or `sudo bash infra/clickhouse/install.sh`), which installs Debian's "
    "clickhouse-server package"
)


def find_binary() -> list[str]:
    """The argv prefix that runs a ClickHouse server, e.g. ["/usr/sbin/clickhouse-server"].

    Debian's 18.16 package installs `/usr/sbin/clickhouse-server` (not on a normal user's
    PATH); modern releases ship one `clickhouse` binary whose `server` subcommand is it.
    """
    debian = Path("/usr/sbin/clickhouse-server")
    if debian.is_file() and os.access(debian, os.X_OK):
        return [str(debian)]
    if found := shutil.which("clickhouse-server"):
        return [found]
    if found := shutil.which("clickhouse"):
        return [found, "server"]
    raise ClickHouseServerError(f"no ClickHouse server binary found; {_INSTALL_HINT}")


class ClickHouseServer(ManagedServer):
    """A single ClickHouse server on 127.0.0.1 with its config, data, logs and pid in `home`.

    Users: `default` (no password, full rights) and `analyst` (read-only profile, password
    `analyst_password`), both accepted from 127.0.0.1 only.
    """

    _error_class = ClickHouseServerError
    _noun = "server"
    _pid_file_name = "clickhouse-server.pid"

    def __init__(
        self,
        *,
        home: Path,
        tcp_port: int = 9000,
        http_port: int = 8123,
        analyst_password: str = "analyst",
    ) -> None:
        if tcp_port == http_port:
            raise ValueError(f"tcp_port and http_port must differ, both are {tcp_port}")
        super().__init__(home)
        self.tcp_port = tcp_port
        self.http_port = http_port
        self._analyst_password = analyst_password

    def __repr__(self) -> str:
        # No password here: reprs end up in logs and pytest output.
        return f"ClickHouseServer(home={str(self.home)!r}, tcp_port={self.tcp_port})"

    # -- addresses and paths --------------------------------------------------------------

    @property
    def url(self) -> str:
        """Native-protocol URL of the `default` user, for clickhouse_driver.Client.from_url."""
        return f"clickhouse://default:@127.0.0.1:{self.tcp_port}/default"

    @property
    def analyst_url(self) -> str:
        """Native-protocol URL of the read-only `analyst` user (contains the password)."""
        return f"clickhouse://analyst:{self._analyst_password}@127.0.0.1:{self.tcp_port}/default"

    @property
    def config_file(self) -> Path:
        return self.home / "config.xml"

    @property
    def users_file(self) -> Path:
        return self.home / "users.xml"

    @property
    def error_log(self) -> Path:
        return self.home / "clickhouse-server.err.log"

    @property
    def stdout_log(self) -> Path:
        # Where the server writes before its own logger is configured (e.g. bad config).
        return self.home / "stdout.log"

    def binary(self) -> list[str]:
        """The argv prefix that runs the server; raises ClickHouseServerError if none."""
        return find_binary()

    def command(self) -> list[str]:
        """The full command line that runs the server (also quoted in error messages)."""
        return [*self.binary(), f"--config-file={self.config_file}"]

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> None:
        """Start the server and wait until `SELECT 1` answers on the native port.

        Does nothing if a server from this `home` is already running and answering. Raises
        `ClickHouseServerError` if it exits early or is not ready within `timeout` seconds;
        a server that failed to become ready is stopped rather than left half-started.
        """
        deadline = time.monotonic() + timeout
        command = self.command()

        if self._adopt_running(deadline):
            return

        self._check_ports_free()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._render_config()
        self._launch(command, self.stdout_log, deadline)

    def is_running(self) -> bool:
        """True if the server from this `home` is alive and answers `SELECT 1`."""
        return self._live_pid() is not None and self._probe() is None

    def version(self) -> str:
        """The running server's version, e.g. "18.16.1"."""
        try:
            rows = self._client().execute("SELECT version()")
        except Exception as exc:
            raise ClickHouseServerError(
                f"cannot ask the ClickHouse server on 127.0.0.1:{self.tcp_port} for its "
                f"version: {exc}"
            ) from exc
        return str(rows[0][0])

    # -- internals ------------------------------------------------------------------------

    def _render_config(self) -> None:
        values = {
            "home": escape(str(self.home)),
            "tcp_port": str(self.tcp_port),
            "http_port": str(self.http_port),
            # Stored hashed so the rendered users.xml does not hold the password in clear.
            "analyst_password_sha256": hashlib.sha256(self._analyst_password.encode()).hexdigest(),
        }
        for template, target in ((CONFIG_TEMPLATE, self.config_file),
                                 (USERS_TEMPLATE, self.users_file)):  # fmt: skip
            try:
                rendered = Template(template.read_text()).substitute(values)
            except (KeyError, ValueError) as exc:
                raise ClickHouseServerError(
                    f"cannot render {template}: placeholder {exc} is unknown; expected only "
                    f"{', '.join('${' + key + '}' for key in values)}"
                ) from exc
            target.write_text(rendered)

    def _client(self, user: str = "default", password: str = "") -> Client:
        # Imported here so `down`/`status` work from a bare python3 without the venv.
        from clickhouse_driver import Client

        return Client(
            host="127.0.0.1",
            port=self.tcp_port,
            user=user,
            password=password,
            connect_timeout=2,
            send_receive_timeout=10,
            sync_request_timeout=2,
        )

    def _probe(self) -> str | None:
        """None if `SELECT 1` answers on the native port, else what went wrong."""
        from clickhouse_driver.errors import Error as DriverError

        # HTTP /ping first: it fails quietly while the server is down, whereas
        # clickhouse_driver logs a traceback for every refused connection and the server
        # logs a warning for every bare TCP connect that sends nothing.
        try:
            with urlopen(f"http://127.0.0.1:{self.http_port}/ping", timeout=2) as response:
                response.read()
        except OSError as exc:
            return f"HTTP /ping on port {self.http_port} failed: {exc}"
        client = self._client()
        try:
            client.execute("SELECT 1")
        except (DriverError, OSError, EOFError) as exc:
            return f"SELECT 1 failed: {exc}"
        finally:
            client.disconnect()
        return None

    # -- hooks for ManagedServer ----------------------------------------------------------

    @property
    def _address(self) -> str:
        return f"127.0.0.1:{self.tcp_port}"

    def _ports(self) -> Iterable[tuple[str, int]]:
        return (("tcp_port", self.tcp_port), ("http_port", self.http_port))

    def _owns_cmdline(self, cmdline: str) -> bool:
        return str(self.config_file) in cmdline

    def _readiness_probe(self) -> Callable[[], str | None]:
        return self._probe

    def _title(self) -> str:
        return "ClickHouse server"

    def _command_text(self) -> str:
        try:
            return shlex.join(self.command())
        except ClickHouseServerError:
            return "(no server binary)"

    def _log_files(self) -> Iterable[Path]:
        return (self.error_log, self.stdout_log)


# -- CLI ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = cli_parser(
        prog="python -m infra.clickhouse.server",
        description="Run a local ClickHouse server on 127.0.0.1.",
        commands=["up", "down", "status"],
        home=REPO_ROOT / "var" / "clickhouse",
        home_help="directory for config, data, logs and pid file (default: <repo>/var/clickhouse)",
        ports=[
            ("--tcp-port", 9000, "native port (default 9000)"),
            ("--http-port", 8123, "HTTP port (default 8123)"),
        ],
        timeout=60,
    )
    args = parser.parse_args(argv)

    server = ClickHouseServer(home=args.home, tcp_port=args.tcp_port, http_port=args.http_port)
    return run_cli(
        server,
        args.command,
        timeout=args.timeout,
        name="ClickHouse",
        label=lambda: f"ClickHouse {server.version()}",
        ready=lambda started: (
            f"ClickHouse {server.version()} ready on 127.0.0.1:{server.tcp_port} "
            f"(native), :{server.http_port} (HTTP) in {time.monotonic() - started:.1f} s "
            f"(pid {server.pid()}, data in {display(server.data_dir)}); "
            f"url {server.url}"
        ),
    )


if __name__ == "__main__":
    sys.exit(main())

"""The two ClickHouse engines behind one small interface.

- `ChdbEngine`: embedded chDB, data in a local directory, zero set-up. One process at a time
  may open a chDB directory, so only the sink writes it; others read after it stops, or use a
  server.
- `ServerEngine`: a ClickHouse server over the native protocol (clickhouse-driver), any version
  from Debian's 18.16 up; its `dialect` says which DDL it understands.

Both also take rows as an Avro Object Container File (`insert_avro`, the sink's bulk path):
chDB reads it itself; for a server, an in-memory chDB turns it into RowBinary of the table's own
column types, which the server takes over HTTP -- 18.16 reads no Avro, and building the rows in
Python costs ~10x more per row (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from cctv.exceptions import StorageError, StorageUnavailable
from cctv.storage.tables import MODERN, Dialect, dialect_for_version


class Engine(Protocol):
    dialect: Dialect
    description: str

    def execute(self, sql: str) -> None: ...

    def query(self, sql: str) -> list[dict[str, Any]]: ...

    def query_read_only(self, sql: str) -> list[dict[str, Any]]:
        """`sql` under the engine's `readonly = 1`; decimals exact, timestamps as datetimes."""
        ...

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None: ...

    def accepts_avro(self) -> bool: ...

    def insert_avro(self, table: str, columns: Sequence[str], container: bytes) -> None: ...

    def close(self) -> None: ...


class _Spool:
    """A private temporary directory where Avro containers wait for chDB's `file()` to read
    them: one file per insert, removed right after."""

    def __init__(self, prefix: str) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix=prefix))
        self._count = itertools.count()

    def write(self, data: bytes) -> Path:
        path = self._dir / f"{os.getpid()}-{next(self._count)}.avro"
        try:
            path.write_bytes(data)
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise StorageError(f"cannot write {path}: {exc}") from exc
        return path

    def remove(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)


class ChdbEngine:
    def __init__(self, path: Path):
        try:
            import chdb.session
        except ImportError as exc:  # pragma: no cover - chdb is a hard dependency
            raise StorageError("chdb is not installed: pip install chdb") from exc
        path.mkdir(parents=True, exist_ok=True)
        try:
            self._session = chdb.session.Session(str(path))
        except Exception as exc:
            raise StorageError(
                f"cannot open embedded ClickHouse (chDB) at {path}: {exc}. Only one process "
                "can open a chDB directory; stop the other one (e.g. the sink) or set "
                "CLICKHOUSE_URL to use a server"
            ) from exc
        self.dialect = MODERN
        self.description = f"embedded chDB at {path}"
        self._spool = _Spool("cctv-chdb-")

    def execute(self, sql: str) -> None:
        self._run(sql, "CSV")

    def query(self, sql: str) -> list[dict[str, Any]]:
        result = self._run(sql, "JSONEachRow")
        text = result.bytes().decode("utf-8") if result is not None else ""
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def query_read_only(self, sql: str) -> list[dict[str, Any]]:
        if re.match(r"\s*(SELECT|WITH)\b", sql, re.IGNORECASE):
            # Last in the SETTINGS clause, so a query's own `readonly = 0` does not win.
            ours = "readonly = 1, date_time_output_format = 'iso'"
            has_settings = re.search(r"\bSETTINGS\b", sql, re.IGNORECASE)
            sql = f"{sql}, {ours}" if has_settings else f"{sql}\nSETTINGS {ours}"
        result = self._run(sql, "JSONEachRow")
        # Numbers with a fraction read as Decimal: money never passes through a float.
        text = result.bytes().decode("utf-8") if result is not None else ""
        return [json.loads(line, parse_float=Decimal) for line in text.splitlines() if line.strip()]

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        lines = [
            json.dumps(
                dict(zip(columns, row, strict=True)), default=_json_value, ensure_ascii=False
            )
            for row in rows
        ]
        self._run(f"INSERT INTO {table} FORMAT JSONEachRow\n" + "\n".join(lines), "CSV")

    def accepts_avro(self) -> bool:
        return True

    def insert_avro(self, table: str, columns: Sequence[str], container: bytes) -> None:
        """Insert an Avro Object Container File, its fields mapped to `columns` by name.

        Through a file and the `file()` table function rather than chDB's streaming inserter:
        after a refused stream the inserter's next use failed too, while a failed query leaves
        nothing behind."""
        names = ", ".join(f"`{c}`" for c in columns)
        path = self._spool.write(container)
        try:
            self._run(
                f"INSERT INTO {table} ({names}) SELECT {names} FROM file('{path}', 'Avro') "
                "SETTINGS max_threads = 1, max_insert_threads = 1",
                "CSV",
            )
        finally:
            path.unlink(missing_ok=True)

    def close(self) -> None:
        self._session.close()
        self._spool.remove()

    def _run(self, sql: str, fmt: str) -> Any:
        try:
            return self._session.query(sql, fmt)
        except Exception as exc:
            raise StorageError(f"chDB: {exc} (statement: {sql[:200]})") from exc


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to chDB")


class ServerEngine:
    def __init__(self, url: str, *, connect_timeout: float = 10, http_port: int | None = None):
        from clickhouse_driver import Client
        from clickhouse_driver.errors import Error as DriverError
        from clickhouse_driver.errors import NetworkError, SocketTimeoutError

        self._driver_error = DriverError
        # Errors that say "the server is not there", as opposed to "it refused this statement".
        self._unreachable = (NetworkError, SocketTimeoutError, OSError, EOFError)
        parts = urlsplit(url)
        user = unquote(parts.username or "default")
        self.description = f"ClickHouse server {parts.hostname}:{parts.port or 9000} as {user}"
        try:
            self._client = Client.from_url(url)
            self._client.connection.connect_timeout = connect_timeout
            version = self._client.execute("SELECT version()")[0][0]
        except (DriverError, OSError, EOFError) as exc:
            raise StorageUnavailable(f"cannot reach {self.description}: {exc}") from exc
        self.version = version
        self.dialect = dialect_for_version(version)
        self._http = None
        self._http_settings: dict[str, str] = {}
        if http_port:
            scheme = "https" if parts.scheme == "clickhouses" else "http"
            self._http = (
                f"{scheme}://{parts.hostname}:{http_port}/",
                user,
                unquote(parts.password or ""),
            )
            # Settings given in the URL (e.g. insert_distributed_sync=1) apply to HTTP inserts
            # too, as the driver applies them to its own.
            self._http_settings = dict(urllib.parse.parse_qsl(parts.query))
        self._transcoder: Any = None
        self._column_types: dict[str, dict[str, str]] = {}
        self._spool: _Spool | None = None

    def accepts_avro(self) -> bool:
        """Whether `insert_avro` can work: the HTTP port answers ClickHouse's /ping."""
        if self._http is None:
            return False
        try:
            with urllib.request.urlopen(self._http[0] + "ping", timeout=5) as response:
                return response.read().strip() == b"Ok."
        except OSError:
            return False

    def insert_avro(self, table: str, columns: Sequence[str], container: bytes) -> None:
        if self._http is None:
            raise StorageError(f"{self.description}: no HTTP port configured for Avro inserts")
        types = self._types(table)
        missing = [c for c in columns if c not in types]
        if missing:
            raise StorageError(f"{self.description}: {table} has no column(s) {missing}")
        if self._transcoder is None:
            import chdb.session

            # In memory: a parser that stores nothing. chDB has one embedded server per process,
            # so this cannot run beside an open ChdbEngine (a sink uses one engine, never both).
            self._transcoder = chdb.session.Session()
            self._spool = _Spool("cctv-transcode-")
        assert self._spool is not None
        select = ", ".join(f"CAST(`{c}` AS {types[c]}) AS `{c}`" for c in columns)
        path = self._spool.write(container)
        try:
            result = self._transcoder.query(
                f"SELECT {select} FROM file('{path}', 'Avro') SETTINGS max_threads = 1",
                "RowBinary",
            )
            body = result.bytes()
        except Exception as exc:
            raise StorageError(f"chDB could not read the Avro rows for {table}: {exc}") from exc
        finally:
            path.unlink(missing_ok=True)
        names = ", ".join(f"`{c}`" for c in columns)
        self._post(f"INSERT INTO {table} ({names}) FORMAT RowBinary", body)

    def _types(self, table: str) -> dict[str, str]:
        if table not in self._column_types:
            database, _, name = table.rpartition(".")
            rows = self.query(
                "SELECT name, type FROM system.columns "
                f"WHERE database = '{database}' AND table = '{name}'"
            )
            self._column_types[table] = {r["name"]: r["type"] for r in rows}
        return self._column_types[table]

    def _post(self, query: str, body: bytes) -> None:
        assert self._http is not None
        base, user, password = self._http
        params = {**self._http_settings, "query": query}
        request = urllib.request.Request(
            base + "?" + urllib.parse.urlencode(params), data=body, method="POST"
        )
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace").strip()
            raise StorageError(f"{self.description} (HTTP): {detail[:500]}") from exc
        except OSError as exc:  # refused, reset, timed out: the server is not there
            raise StorageUnavailable(f"{self.description} (HTTP): {exc}") from exc

    def execute(self, sql: str) -> None:
        self._call(sql)

    def query(self, sql: str) -> list[dict[str, Any]]:
        rows, types = self._call(sql, with_column_types=True)
        names = [name for name, _ in types]
        return [dict(zip(names, row, strict=True)) for row in rows]

    def query_read_only(self, sql: str) -> list[dict[str, Any]]:
        # 2, not 1: reads, and a query's own SETTINGS (max_threads, …), but never writes, and
        # `readonly` itself cannot be changed back.
        rows, types = self._call(sql, with_column_types=True, settings={"readonly": 2})
        names = [name for name, _ in types]
        return [dict(zip(names, row, strict=True)) for row in rows]

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            cols = ", ".join(f"`{c}`" for c in columns)
            self._call(f"INSERT INTO {table} ({cols}) VALUES", list(rows))

    def close(self) -> None:
        self._client.disconnect()
        if self._transcoder is not None:
            # chDB runs one embedded server per process: release it for whoever comes next.
            self._transcoder.close()
            self._transcoder = None
        if self._spool is not None:
            self._spool.remove()

    def _call(self, sql: str, params: Any = None, **kwargs: Any) -> Any:
        try:
            return self._client.execute(sql, params, **kwargs)
        except self._unreachable as exc:
            self._client.disconnect()  # reconnect on the next call
            raise StorageUnavailable(f"{self.description}: {exc} (statement: {sql[:200]})") from exc
        except self._driver_error as exc:
            # The server's own stack trace helps nobody reading the message.
            message = str(exc).split(" Stack trace:", 1)[0].strip()
            raise StorageError(f"{self.description}: {message} (statement: {sql[:200]})") from exc


def open_engine(*, url: str | None, chdb_path: Path, http_port: int | None = None) -> Engine:
    """A server when a URL is configured, otherwise embedded chDB."""
    return ServerEngine(url, http_port=http_port) if url else ChdbEngine(chdb_path)

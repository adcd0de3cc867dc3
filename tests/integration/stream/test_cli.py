"""``prevenance stream publish``: a CSV or JSON-lines file lands in the transactions stream once,
even when published twice."""

from __future__ import annotations

import asyncio
import csv
import os
import subprocess
import sys
from pathlib import Path

import nats
import orjson

from prevenance.stream.names import Names
from tests.conftest import tx_body


def publish(path: Path, names: Names, nats_url: str) -> str:
    env = {**os.environ, "PREVENANCE_NATS_URL": nats_url, "PREVENANCE_STREAM_NAMESPACE": names.namespace}
    done = subprocess.run(
        [sys.executable, "-m", "prevenance.cli", "stream", "publish", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def stored(names: Names, nats_url: str) -> list[dict[str, object]]:
    async def read() -> list[dict[str, object]]:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        info = await js.stream_info(names.transactions_stream)
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1) if info.state.messages else []:
            out.append(orjson.loads((await js.get_msg(names.transactions_stream, seq)).data or b"{}"))
        await nc.close()
        return out

    return asyncio.run(read())


def test_publish_csv_then_json_lines_each_transaction_stored_once(
    names: Names, nats_url: str, tmp_path: Path
) -> None:
    bodies = [tx_body(f"T{i}", "M1", f"{i}.50") for i in range(1, 4)]
    path = tmp_path / "transactions.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(bodies[0]))
        writer.writeheader()
        writer.writerows(bodies)
    assert "published 3 transactions" in publish(path, names, nats_url)
    publish(path, names, nats_url)
    lines = tmp_path / "more.jsonl"
    lines.write_bytes(b"\n".join(orjson.dumps(b) for b in [*bodies, tx_body("T4", "M1")]) + b"\n")
    publish(lines, names, nats_url)
    assert [m["id"] for m in stored(names, nats_url)] == ["T1", "T2", "T3", "T4"]
    assert stored(names, nats_url)[0] == bodies[0]


def _run_publish(path: Path, names: Names, nats_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PREVENANCE_NATS_URL": nats_url, "PREVENANCE_STREAM_NAMESPACE": names.namespace}
    return subprocess.run(
        [sys.executable, "-m", "prevenance.cli", "stream", "publish", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_distinct_ids_are_never_deduplicated_as_one_and_a_republish_still_stores_nothing(
    names: Names, nats_url: str, tmp_path: Path
) -> None:
    """The server drops a message whose ``Nats-Msg-Id`` it saw within two minutes, and the NATS
    client trims a header value and turns CR and LF into spaces: ``tx:<id>`` made the distinct
    transaction ids ``"J1"``, ``"J1 "`` and ``"J1\\n"`` one header, so all but the first were dropped
    without a trace (neither applied nor rejected), and a malformed ``{"id": 7}`` hid a later
    ``{"id": "7"}``. An id that is not plain printable ASCII is now named by its digest, and a
    message without a text id by the digest of its bytes."""
    ids = ["J1", "J1 ", " J1", "J1\n", "J1\r\nX", "J1  X", "Jé"]
    lines = [orjson.dumps(tx_body(tx_id, "M1")) for tx_id in ids]
    lines += [
        orjson.dumps({**tx_body("x", "M1"), "id": 7}),
        orjson.dumps(tx_body("7", "M1")),
        b'{"no": "id"}',
    ]
    path = tmp_path / "odd.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    publish(path, names, nats_url)
    publish(path, names, nats_url)  # within the window: every message is stored once
    assert [m["id"] for m in stored(names, nats_url)[:-1]] == [*ids, 7, "7"]
    assert len(stored(names, nats_url)) == len(lines)


def test_a_csv_is_read_as_the_ingest_reads_it_and_a_bad_one_publishes_nothing(
    names: Names, nats_url: str, tmp_path: Path
) -> None:
    """A CSV from a spreadsheet starts with a byte-order mark: the first column was read as
    ``\\ufeffid``, every message went out without an id and every one was rejected. A file missing a
    column, with a column twice or not UTF-8 was published row by row (or stopped with a traceback
    part-way); it is now refused before anything is published, exit 2 and one line, as
    ``prevenance ingest`` refuses it."""
    bodies = [tx_body(f"B{i}", "M1", f"{i}.50") for i in range(1, 3)]
    header = ",".join(bodies[0])
    rows = "\r\n".join(",".join(str(v) for v in body.values()) for body in bodies)
    bom = tmp_path / "bom.csv"
    bom.write_bytes(("\ufeff" + header + "\r\n" + rows + "\r\n").encode())
    assert "published 2 transactions" in publish(bom, names, nats_url)
    assert stored(names, nats_url) == bodies

    bad = {
        "missing.csv": (header.replace(",category", "") + "\n").encode(),
        "twice.csv": (header + ",amount\n" + rows.split("\r\n")[0] + ",999.00\n").encode(),
        "latin.csv": (header + "\n" + rows.split("\r\n")[0].replace("Librairie", "Café") + "\n").encode(
            "latin-1"
        ),
    }
    for name, content in bad.items():
        path = tmp_path / name
        path.write_bytes(content)
        done = _run_publish(path, names, nats_url)
        assert done.returncode == 2, (name, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr and done.stderr.startswith("error: "), done.stderr
    assert stored(names, nats_url) == bodies


def test_a_message_larger_than_the_server_accepts_refuses_the_file_before_anything_is_published(
    names: Names, nats_url: str, tmp_path: Path
) -> None:
    """A line over the server's ``max_payload`` (1 MiB) stopped the command with a traceback
    part-way: the lines before it were published, the lines after it were not."""
    lines = [
        orjson.dumps(tx_body("G1", "M1")),
        orjson.dumps({**tx_body("BIG", "M1"), "merchant": "x" * 2_000_000}),
    ]
    lines.append(orjson.dumps(tx_body("G2", "M1")))
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    done = _run_publish(path, names, nats_url)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.startswith("error: ") and "line 2" in done.stderr and "Traceback" not in done.stderr
    assert stored(names, nats_url) == []


def test_a_namespace_or_source_that_is_no_subject_token_is_refused_with_one_line(
    names: Names, nats_url: str, tmp_path: Path
) -> None:
    """A space, a dot or a wildcard in ``--source`` or the namespace crashed the command with a
    traceback (an invalid subject or stream name) or published to a wildcard subject (``a.*``)."""
    path = tmp_path / "one.jsonl"
    path.write_bytes(orjson.dumps(tx_body("S1", "M1")) + b"\n")
    env = {**os.environ, "PREVENANCE_NATS_URL": nats_url}
    for extra, namespace in [
        (["--source", "a b"], names.namespace),
        (["--source", "a.*"], names.namespace),
        (["--source", "x>"], names.namespace),
        ([], "a.b"),
        ([], "a b"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "prevenance.cli", "stream", "publish", str(path), *extra],
            env={**env, "PREVENANCE_STREAM_NAMESPACE": namespace},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, (extra, namespace, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr and "letters, digits" in done.stderr, done.stderr
    assert stored(names, nats_url) == []

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

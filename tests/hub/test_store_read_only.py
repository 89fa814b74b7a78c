"""A read-only unit of the hub's SQLite store can read beside a writer but cannot write."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from phds.errors import StoreError
from phds.hub.store import HubStore


def test_a_read_only_unit_reads_while_a_writer_holds_the_lock_and_refuses_to_write(tmp_path: Path) -> None:
    store = HubStore.open(f"sqlite:///{tmp_path / 'hub.sqlite'}")
    try:
        with store.unit() as writer:  # BEGIN IMMEDIATE: the write lock is held for the whole block
            writer.session.execute(text("SELECT count(*) FROM organisations"))
            with store.unit(read_only=True) as reader:  # would wait 30 s for the lock if it took it
                assert reader.session.execute(text("SELECT count(*) FROM organisations")).scalar() == 0
        with pytest.raises(StoreError, match="readonly"), store.unit(read_only=True) as reader:
            reader.session.execute(text("DELETE FROM organisations"))
    finally:
        store.close()

"""argilla-server's OpenSearch engine without Painless scripts, for osmem-server.

Runs inside argilla-server's own virtual environment (started by `curate argilla up`).
argilla-server 2.8 updates a record's responses and suggestions with Painless scripts in
exactly three methods; osmem-server (an in-memory OpenSearch-compatible server from PyPI)
answers every other query Argilla sends but not scripts. This subclass, registered under
the same engine name, does those three updates as read-modify-write, guarded by the
document's sequence number so that a concurrent write is retried, not lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from argilla_server.constants import SEARCH_ENGINE_OPENSEARCH
from argilla_server.search_engine.base import SearchEngine
from argilla_server.search_engine.commons import es_index_name_for_dataset
from argilla_server.search_engine.opensearch import OpenSearchEngine
from opensearchpy.exceptions import ConflictError

ATTEMPTS = 20


@SearchEngine.register(engine_name=SEARCH_ENGINE_OPENSEARCH)
class ScriptlessOpenSearchEngine(OpenSearchEngine):
    async def _rewrite(self, index: str, doc_id: str, change: Callable[[dict], None]) -> None:
        for _ in range(ATTEMPTS):
            found = await self.client.get(index=index, id=doc_id)
            source = found["_source"]
            change(source)
            try:
                await self.client.index(
                    index=index,
                    id=doc_id,
                    body=source,
                    if_seq_no=found["_seq_no"],
                    if_primary_term=found["_primary_term"],
                    refresh=True,
                )
                return
            except ConflictError:
                continue  # someone wrote in between: read again
        raise RuntimeError(f"{index}/{doc_id}: could not update after {ATTEMPTS} conflicts")

    @staticmethod
    def _map_record_response_to_es(response: Any) -> dict:
        """As the base class, but a discarded response may have no values (None)."""
        if response.values is None:
            return {"id": response.id, "status": response.status, "user_id": response.user_id}
        return OpenSearchEngine._map_record_response_to_es(response)

    async def update_record_response(self, response: Any) -> None:
        record = response.record
        mapped = self._map_record_response_to_es(response)

        def change(source: dict) -> None:
            same = str(mapped["id"])
            kept = [r for r in source.get("responses") or [] if str(r.get("id")) != same]
            source["responses"] = [*kept, {**mapped, "id": same, "user_id": str(mapped["user_id"])}]

        await self._rewrite(es_index_name_for_dataset(record.dataset), str(record.id), change)

    async def delete_record_response(self, response: Any) -> None:
        record = response.record
        gone = str(response.id)

        def change(source: dict) -> None:
            source["responses"] = [
                r for r in source.get("responses") or [] if str(r.get("id")) != gone
            ]

        await self._rewrite(es_index_name_for_dataset(record.dataset), str(record.id), change)

    async def delete_record_suggestion(self, suggestion: Any) -> None:
        name = suggestion.question.name

        def change(source: dict) -> None:
            (source.get("suggestions") or {}).pop(name, None)

        index = es_index_name_for_dataset(suggestion.record.dataset)
        await self._rewrite(index, str(suggestion.record_id), change)

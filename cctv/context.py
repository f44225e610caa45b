"""Everything a process loads from its settings at start-up: validated once, passed in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cctv.campaign import Campaign
from cctv.provinces import Provinces
from cctv.settings import Settings
from cctv.storage.engines import open_engine
from cctv.storage.store import Store
from cctv.topics import TopicRegistry
from schemas.codec import AvroCodec
from schemas.registry import SchemaRegistry


@dataclass(frozen=True)
class Context:
    settings: Settings
    provinces: Provinces
    campaign: Campaign
    topics: TopicRegistry
    schemas: SchemaRegistry
    codec: AvroCodec

    @classmethod
    def load(cls, settings: Settings) -> Context:
        provinces = Provinces.load(settings.provinces_file)
        schemas = SchemaRegistry.load()
        return cls(
            settings=settings,
            provinces=provinces,
            campaign=Campaign.load(settings.campaign_file, provinces=provinces),
            topics=TopicRegistry.load(settings.kafka.topics_file),
            schemas=schemas,
            codec=AvroCodec(schemas, schema_registry_url=settings.kafka.schema_registry_url),
        )

    def open_store(self) -> Store:
        ch = self.settings.clickhouse
        engine = open_engine(
            url=ch.url.get_secret_value() if ch.url else None,
            chdb_path=ch.chdb_path,
            http_port=ch.http_port,
        )
        latest = {
            name: self.schemas.raw(name, self.schemas.versions(name)[-1])
            for name in self.schemas.names()
        }
        return Store(engine, database=ch.database, schemas=latest)

    def open_migrated_store(self, progress: Callable[[str], None] | None = None) -> Store:
        """`open_store`, brought up to date by `cctv db migrate`'s migrations (idempotent: a
        no-op when nothing is pending), so a process never writes to an older schema."""
        from cctv.failpoints import Failpoints
        from cctv.storage.migrations import migrate

        store = self.open_store()
        try:
            migrate(
                store,
                timezone=self.settings.clickhouse.day_timezone,
                progress=progress,
                failpoints=Failpoints(self.settings.failpoints),
            )
        except BaseException:
            store.engine.close()
            raise
        return store

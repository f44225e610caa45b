"""The HTTP ingestion gateway: provincial systems POST records, Kafka gets them validated."""

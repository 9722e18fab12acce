"""Common package of the labour-relations risk platform: events, Kafka and database plumbing, settings,
logging, metrics and auth helpers. Nothing service-specific lives here."""

DROP TABLE alerts; DROP TABLE outbox_events;

-- The payments service's first schema (the runner before sqlitedb.Migrate kept it
-- as a Go string and its version in the table schema_migrations). Times are
-- nanoseconds since the Unix epoch, UTC; money is INTEGER minor units.
CREATE TABLE payments (
	seq             INTEGER PRIMARY KEY AUTOINCREMENT,
	id              TEXT    NOT NULL UNIQUE,
	created_by      TEXT    NOT NULL,
	idempotency_key TEXT    NOT NULL,
	fingerprint     TEXT    NOT NULL,
	status          TEXT    NOT NULL CHECK (status IN ('PENDING', 'COMPLETED', 'FAILED')),
	from_account_id TEXT    NOT NULL,
	to_account_id   TEXT    NOT NULL,
	currency        TEXT    NOT NULL,
	minor_units     INTEGER NOT NULL CHECK (minor_units > 0),
	memo            TEXT    NOT NULL DEFAULT '',
	transaction_id  TEXT    NOT NULL DEFAULT '',
	failure_code    TEXT    NOT NULL DEFAULT '',
	failure_reason  TEXT    NOT NULL DEFAULT '',
	transfer_key    TEXT    NOT NULL UNIQUE,
	create_time     INTEGER NOT NULL,
	update_time     INTEGER NOT NULL,
	UNIQUE (created_by, idempotency_key),
	CHECK ((status = 'COMPLETED') = (transaction_id <> '')),
	CHECK ((status = 'FAILED') = (failure_code <> ''))
);
CREATE INDEX payments_by_creator ON payments (created_by, seq);
CREATE INDEX payments_pending ON payments (seq) WHERE status = 'PENDING';

-- The rolling customer limit sums what a creator ordered in a currency over the window
-- (PENDING and COMPLETED payments). Summing the payments themselves costs one row per
-- payment in the window: a customer making many small payments made every payment of
-- theirs slower (up to limit / 0.01 rows each). payment_usage keeps the same sums per
-- creator, currency and minute of create_time, maintained by triggers in the same
-- transaction as the payment, so the limit reads at most one row per minute of the
-- window plus the payments of the window's first, partial minute.
CREATE TABLE payment_usage (
	created_by  TEXT    NOT NULL,
	currency    TEXT    NOT NULL,
	minute      INTEGER NOT NULL, -- create_time / 60e9 (nanoseconds to minutes)
	minor_units INTEGER NOT NULL,
	PRIMARY KEY (created_by, currency, minute)
) WITHOUT ROWID;

INSERT INTO payment_usage (created_by, currency, minute, minor_units)
	SELECT created_by, currency, create_time / 60000000000, SUM(minor_units)
	FROM payments WHERE status <> 'FAILED' GROUP BY created_by, currency, create_time / 60000000000;

CREATE TRIGGER payment_usage_insert AFTER INSERT ON payments WHEN NEW.status <> 'FAILED'
BEGIN
	INSERT INTO payment_usage (created_by, currency, minute, minor_units)
		VALUES (NEW.created_by, NEW.currency, NEW.create_time / 60000000000, NEW.minor_units)
		ON CONFLICT (created_by, currency, minute) DO UPDATE SET minor_units = minor_units + excluded.minor_units;
END;

-- A payment that fails no longer counts (a FAILED payment never changes status again).
CREATE TRIGGER payment_usage_fail AFTER UPDATE OF status ON payments
	WHEN OLD.status <> 'FAILED' AND NEW.status = 'FAILED'
BEGIN
	UPDATE payment_usage SET minor_units = minor_units - OLD.minor_units
		WHERE created_by = OLD.created_by AND currency = OLD.currency AND minute = OLD.create_time / 60000000000;
END;

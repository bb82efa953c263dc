-- The payments service's PostgreSQL schema: the table the SQLite migrations 0001 to
-- 0005 build, in one step. Times are nanoseconds since the Unix epoch, UTC; money is
-- BIGINT minor units.
CREATE TABLE payments (
    -- Creation order, for paging and recovery. An identity may skip values (a
    -- rolled-back insert) and, with several writers, commit out of order; it only
    -- orders, it never counts.
    seq                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                   TEXT   NOT NULL UNIQUE,
    created_by           TEXT   NOT NULL,
    idempotency_key      TEXT   NOT NULL,
    fingerprint          TEXT   NOT NULL,
    status               TEXT   NOT NULL CHECK (status IN ('PENDING', 'COMPLETED', 'FAILED')),
    from_account_id      TEXT   NOT NULL,
    to_account_id        TEXT   NOT NULL,
    currency             TEXT   NOT NULL,
    minor_units          BIGINT NOT NULL CHECK (minor_units > 0),
    memo                 TEXT   NOT NULL DEFAULT '',
    transaction_id       TEXT   NOT NULL DEFAULT '',
    failure_code         TEXT   NOT NULL DEFAULT '',
    failure_reason       TEXT   NOT NULL DEFAULT '',
    failure_error_reason TEXT   NOT NULL DEFAULT '',
    transfer_key         TEXT   NOT NULL UNIQUE,
    create_time          BIGINT NOT NULL,
    update_time          BIGINT NOT NULL,
    -- The certificate the order was made with (serial in lower-case hex, raw DER
    -- issuer) and the CAs above it (JSON), so that a PENDING order of a revoked
    -- creator is voided rather than carried out.
    creator_serial       TEXT   NOT NULL DEFAULT '',
    creator_issuer       BYTEA  NOT NULL DEFAULT '',
    creator_cas          TEXT   NOT NULL DEFAULT '',
    -- Set on an order refused by the rolling customer limit.
    limit_minor_units    BIGINT NOT NULL DEFAULT 0,
    limit_remaining      BIGINT NOT NULL DEFAULT 0,
    -- The replica carrying a PENDING payment out, and until when.
    lease_owner          TEXT   NOT NULL DEFAULT '',
    lease_until          BIGINT NOT NULL DEFAULT 0,
    UNIQUE (created_by, idempotency_key),
    CHECK ((status = 'COMPLETED') = (transaction_id <> '')),
    CHECK ((status = 'FAILED') = (failure_code <> ''))
);
CREATE INDEX payments_by_creator ON payments (created_by, seq);
CREATE INDEX payments_pending ON payments (seq) WHERE status = 'PENDING';
-- The rolling limit sums a creator's recent orders in one currency.
CREATE INDEX payments_by_creator_currency_time ON payments (created_by, currency, create_time);

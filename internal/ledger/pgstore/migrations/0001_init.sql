-- The ledger's first PostgreSQL schema, the same tables as SQLite's 0001_init.sql.
-- Times are microseconds since the Unix epoch, UTC. Money is BIGINT minor units.
-- Ids and owners compare byte by byte (COLLATE "C") whatever the database's
-- locale, so that listing order and paging match the SQLite store's.

CREATE TABLE accounts (
    id           TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    owner        TEXT COLLATE "C" NOT NULL,
    currency     TEXT    NOT NULL CHECK (length(currency) = 3),
    balance      BIGINT  NOT NULL,
    display_name TEXT    NOT NULL,
    system       BOOLEAN NOT NULL,
    created_at   BIGINT  NOT NULL,
    -- Only the per-currency system account may go negative, and only it has no owner.
    CHECK (system OR balance >= 0),
    CHECK (system = (owner = ''))
);

CREATE INDEX accounts_by_owner ON accounts (owner, id);
CREATE UNIQUE INDEX accounts_one_system_per_currency ON accounts (currency) WHERE system;

CREATE TABLE transactions (
    id             TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    kind           TEXT   NOT NULL CHECK (kind IN ('deposit', 'withdrawal', 'transfer')),
    amount         BIGINT NOT NULL CHECK (amount > 0),
    currency       TEXT   NOT NULL,
    reference      TEXT   NOT NULL,
    principal      TEXT   NOT NULL,
    on_behalf_of   TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    -- The entries are the sequences first_sequence .. first_sequence + entry_count - 1.
    first_sequence BIGINT NOT NULL CHECK (first_sequence > 0),
    entry_count    INT    NOT NULL CHECK (entry_count > 0)
);

-- sequence is assigned from entry_sequence inside the write transaction, never
-- from a PostgreSQL SEQUENCE: a sequence is not transactional and leaves gaps.
CREATE TABLE entries (
    sequence       BIGINT NOT NULL PRIMARY KEY,
    transaction_id TEXT COLLATE "C" NOT NULL REFERENCES transactions (id),
    account_id     TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
    amount         BIGINT NOT NULL CHECK (amount <> 0),
    currency       TEXT   NOT NULL,
    balance_after  BIGINT NOT NULL,
    created_at     BIGINT NOT NULL
);

-- The counter row. Every write transaction locks it first (see pgstore.Update),
-- which orders the writers of all replicas: sequences commit in order.
CREATE TABLE entry_sequence (
    id            INT    NOT NULL PRIMARY KEY CHECK (id = 1),
    last_sequence BIGINT NOT NULL CHECK (last_sequence >= 0)
);

INSERT INTO entry_sequence (id, last_sequence) VALUES (1, 0);

-- One record per (caller, key): the request's fingerprint and its outcome,
-- either a transaction or a refusal.
CREATE TABLE idempotency (
    principal      TEXT   NOT NULL,
    idem_key       TEXT   NOT NULL,
    fingerprint    BYTEA  NOT NULL,
    transaction_id TEXT COLLATE "C" REFERENCES transactions (id),
    refusal_code   TEXT   NOT NULL,
    refusal_field  TEXT   NOT NULL,
    refusal_detail TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (principal, idem_key),
    CHECK ((transaction_id IS NULL) <> (refusal_code = ''))
);

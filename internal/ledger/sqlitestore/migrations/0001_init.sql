-- The ledger's first schema. Times are microseconds since the Unix epoch, UTC.
-- Money is INTEGER minor units. Ids are the ledger's opaque text ids.

CREATE TABLE accounts (
    id           TEXT    NOT NULL PRIMARY KEY,
    owner        TEXT    NOT NULL,
    currency     TEXT    NOT NULL CHECK (length(currency) = 3),
    balance      INTEGER NOT NULL,
    display_name TEXT    NOT NULL,
    system       INTEGER NOT NULL CHECK (system IN (0, 1)),
    created_at   INTEGER NOT NULL,
    -- Only the per-currency system account may go negative, and only it has no owner.
    CHECK (system = 1 OR balance >= 0),
    CHECK ((system = 1) = (owner = ''))
) WITHOUT ROWID;

CREATE INDEX accounts_by_owner ON accounts (owner, id);
CREATE UNIQUE INDEX accounts_one_system_per_currency ON accounts (currency) WHERE system = 1;

CREATE TABLE transactions (
    id             TEXT    NOT NULL PRIMARY KEY,
    kind           TEXT    NOT NULL CHECK (kind IN ('deposit', 'withdrawal', 'transfer')),
    amount         INTEGER NOT NULL CHECK (amount > 0),
    currency       TEXT    NOT NULL,
    reference      TEXT    NOT NULL,
    principal      TEXT    NOT NULL,
    on_behalf_of   TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    -- The transaction's entries are the sequences first_sequence to
    -- first_sequence + entry_count - 1, found by the primary key of entries
    -- rather than by one more index with random keys to write.
    first_sequence INTEGER NOT NULL CHECK (first_sequence > 0),
    entry_count    INTEGER NOT NULL CHECK (entry_count > 0)
) WITHOUT ROWID;

-- sequence is assigned by the ledger from entry_sequence inside the write
-- transaction, never generated here, so that it has no gaps.
CREATE TABLE entries (
    sequence       INTEGER NOT NULL PRIMARY KEY,
    transaction_id TEXT    NOT NULL REFERENCES transactions (id),
    account_id     TEXT    NOT NULL REFERENCES accounts (id),
    amount         INTEGER NOT NULL CHECK (amount <> 0),
    currency       TEXT    NOT NULL,
    balance_after  INTEGER NOT NULL,
    created_at     INTEGER NOT NULL
);

-- No index by account yet: nothing reads an account's history. The migration
-- that adds such a read adds the index (account_id, sequence).

CREATE TABLE entry_sequence (
    id            INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    last_sequence INTEGER NOT NULL CHECK (last_sequence >= 0)
);

INSERT INTO entry_sequence (id, last_sequence) VALUES (1, 0);

-- One record per (caller, key): the request's fingerprint and its outcome,
-- either a transaction or a refusal.
CREATE TABLE idempotency (
    principal      TEXT    NOT NULL,
    idem_key       TEXT    NOT NULL,
    fingerprint    BLOB    NOT NULL,
    transaction_id TEXT    REFERENCES transactions (id),
    refusal_code   TEXT    NOT NULL,
    refusal_field  TEXT    NOT NULL,
    refusal_detail TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (principal, idem_key),
    CHECK ((transaction_id IS NULL) <> (refusal_code = ''))
) WITHOUT ROWID;

-- ListTransactions names the idempotency key of each transaction it lists:
-- the record of a transaction is found by its transaction id.
CREATE INDEX idempotency_by_transaction ON idempotency (transaction_id) WHERE transaction_id IS NOT NULL;

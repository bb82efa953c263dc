-- The certificate an order was made with: its serial (lower-case hex) and the raw
-- DER of its issuer name, so that an order still PENDING when that certificate is
-- revoked is failed rather than carried out. Orders recorded before this
-- migration have neither and are not checked.
ALTER TABLE payments ADD COLUMN creator_serial TEXT NOT NULL DEFAULT '';
ALTER TABLE payments ADD COLUMN creator_issuer BLOB NOT NULL DEFAULT x'';

-- An order refused by the rolling customer limit is recorded FAILED, so that its
-- idempotency key keeps refusing it, with the limit and what remained of it then.
ALTER TABLE payments ADD COLUMN limit_minor_units INTEGER NOT NULL DEFAULT 0;
ALTER TABLE payments ADD COLUMN limit_remaining   INTEGER NOT NULL DEFAULT 0;

-- The rolling limit sums a creator's recent orders in one currency.
CREATE INDEX payments_by_creator_currency_time ON payments (created_by, currency, create_time);

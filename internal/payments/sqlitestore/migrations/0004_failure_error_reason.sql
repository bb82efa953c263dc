-- The google.rpc.ErrorInfo reason (domain bank.local, such as INSUFFICIENT_FUNDS) the
-- accounts service refused a FAILED payment's transfer with, returned again with the
-- payment's refusal. Payments failed before this migration have '' and are refused
-- with their code and message alone.
ALTER TABLE payments ADD COLUMN failure_error_reason TEXT NOT NULL DEFAULT '';

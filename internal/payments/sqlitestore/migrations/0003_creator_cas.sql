-- The CAs above the certificate an order was made with (intermediates, not the root):
-- a JSON list of {"serial": lower-case hex, "issuer": base64 of the raw DER issuer
-- name}. Revoking an intermediate revokes every certificate it issued, so a PENDING
-- order of a creator whose intermediate was revoked is settled like one whose own
-- certificate was. Orders recorded before this migration have '' and are checked by
-- their leaf alone.
ALTER TABLE payments ADD COLUMN creator_cas TEXT NOT NULL DEFAULT '';

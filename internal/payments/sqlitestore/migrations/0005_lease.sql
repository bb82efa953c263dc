-- The lease of a PENDING payment: which payments process (lease_owner, a random name
-- per process) is carrying it out, until when (nanoseconds since the Unix epoch,
-- UTC). Another process takes it over only once the lease has expired, so that
-- several processes recovering at once call accounts for each payment once. A
-- finished payment has none ('' and 0); so do payments recorded before this
-- migration.
ALTER TABLE payments ADD COLUMN lease_owner TEXT    NOT NULL DEFAULT '';
ALTER TABLE payments ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;

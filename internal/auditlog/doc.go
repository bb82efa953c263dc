// Package auditlog is the services' audit trail: a durable, tamper-evident sink that
// appends one JSON line per call to an audit file, and the offline verifier of such files.
//
// Callers hand a Record over (Sink.Write) and do no formatting or I/O themselves: one
// writer goroutine (a groupcommit.Committer) formats the records, chains them (each line
// carries the SHA-256 of the line before it), appends them in batches and makes each batch
// durable with one fsync. Denials and calls with side effects wait for their batch; other
// records are durable within the flush window. Signed checkpoints, also kept in a separate
// checkpoint file, make a rewritten chain or a cut-off tail detectable (Verify).
package auditlog

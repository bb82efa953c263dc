// Package groupcommit runs many small write requests in few transactions: callers
// queue a request, one goroutine takes what is queued and runs it in one
// transaction (one commit, one fsync for the group), and each caller is answered
// once that transaction committed. The transaction is the user's, given as a Run
// function: a database transaction (the ledger's Store.Update, the payments SQLite
// store's writer connection) or a batch of appends to a file and its fsync (see
// Example_fileAppender). The package only groups, isolates failures and answers.
//
// Do waits for durability; Submit does not (fire and forget), and WithMaxDelay
// lets such requests wait a little for company so that a trickle of them still
// shares fsyncs. A batch with a caller that waits runs at once, but first yields
// the processor, without a timer, so that callers woken by the same event (the
// commit of another committer's batch, whose callers now each hand over their
// audit record) join it instead of queueing behind a batch of one.
package groupcommit

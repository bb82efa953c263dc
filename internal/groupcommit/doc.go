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
// shares fsyncs.
package groupcommit

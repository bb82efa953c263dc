// Package groupcommit runs many small write requests in few transactions: callers
// queue a request, one goroutine takes what is queued and runs it in one
// transaction (one commit, one fsync for the group), and each caller is answered
// once that transaction committed. The transaction is the user's (a database
// transaction, a batch of appends to a file and its fsync); the package only
// groups, isolates failures and answers.
package groupcommit

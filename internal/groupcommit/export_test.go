package groupcommit

// Queued reports how many requests wait in c's queue.
func Queued[T, R any](c *Committer[T, R]) int { return len(c.queue) }

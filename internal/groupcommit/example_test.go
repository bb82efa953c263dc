package groupcommit_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"mtlsbank/internal/groupcommit"
)

// An append-only file with one fsync per batch: the shape of an audit log.
// Records that must be durable before their caller goes on (a denial, a
// money-moving call) use Do; the others (allowed reads) use Submit and are
// durable within the max delay. A failed write truncates the file back to where
// the batch began, so a batch is on disk whole or not at all.
func Example_fileAppender() {
	dir, err := os.MkdirTemp("", "groupcommit-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	f, err := os.OpenFile(filepath.Join(dir, "audit.log"), os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		panic(err)
	}
	defer f.Close()

	appendBatch := func(_ context.Context, batch func(*bufio.Writer) error) error {
		start, err := f.Seek(0, 2)
		if err != nil {
			return err
		}
		w := bufio.NewWriter(f)
		err = batch(w)
		if err == nil {
			err = w.Flush()
		}
		if err == nil {
			err = f.Sync() // one fsync for the whole batch
		}
		if err != nil {
			_ = f.Truncate(start) // the batch is not on disk: none of it
		}
		return err
	}
	c, err := groupcommit.New[*bufio.Writer, struct{}](appendBatch, groupcommit.WithMaxDelay(10*time.Millisecond))
	if err != nil {
		panic(err)
	}
	record := func(line string) groupcommit.Request[*bufio.Writer, struct{}] {
		return func(_ context.Context, w *bufio.Writer) (struct{}, error) {
			_, err := w.WriteString(line + "\n")
			return struct{}{}, err
		}
	}

	ctx := context.Background()
	// An allowed read: recorded without waiting.
	if err := c.Submit(ctx, record("allow GetAccount alice"), nil); err != nil {
		panic(err)
	}
	// A denial: its caller waits until it is on disk (and takes the read along).
	if _, err := c.Do(ctx, record("deny Transfer mallory")); err != nil {
		panic(err)
	}
	c.Close()

	data, err := os.ReadFile(f.Name())
	if err != nil {
		panic(err)
	}
	fmt.Print(string(data))
	// Output:
	// allow GetAccount alice
	// deny Transfer mallory
}

package store

import (
	"fmt"
	"strings"
	"testing"
)

// backlog returns n pushes with envelopes of a realistic size.
func backlog(prefix string, n int) []Push {
	env := "csy1:k1:" + strings.Repeat("A", 600)
	ps := make([]Push, n)
	for i := range ps {
		ps[i] = Push{MsgID: fmt.Sprintf("%s-%06d", prefix, i), Op: OpPut, Envelope: env, Hash: "sha256:0123456789abcdef"}
	}
	return ps
}

// BenchmarkEnqueueMany10k measures a 10k-message backlog enqueued in one
// transaction.
func BenchmarkEnqueueMany10k(b *testing.B) {
	db := mustOpen(b, b.TempDir(), Options{})
	for i := 0; b.Loop(); i++ {
		if _, err := db.EnqueueMany(alice, backlog(fmt.Sprint(i), 10_000)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBatchCycle measures NextBatch + CompleteBatch of 100 entries
// with outboxes of different depths: the cost must not grow with the depth.
func BenchmarkBatchCycle(b *testing.B) {
	for _, depth := range []int{1_000, 50_000} {
		b.Run(fmt.Sprint("outbox=", depth), func(b *testing.B) {
			db := mustOpen(b, b.TempDir(), Options{})
			if _, err := db.EnqueueMany(alice, backlog("m", depth)); err != nil {
				b.Fatal(err)
			}
			var id int64
			refill := 0
			for b.Loop() {
				batch, err := db.NextBatch(alice, 100, 256<<10)
				if err != nil {
					b.Fatal(err)
				}
				rs := make([]Result, len(batch.Entries))
				for i, e := range batch.Entries {
					id++
					rs[i] = Result{Token: e.Token, JournalID: id}
				}
				if err := db.CompleteBatch(alice, rs); err != nil {
					b.Fatal(err)
				}
				// Keep the depth constant: put back what was sent.
				refill++
				if _, err := db.EnqueueMany(alice, backlog(fmt.Sprint("r", refill), len(rs))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/store"
	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/watch"
)

// offline is a Remote that is never reached: the benchmarks below do local
// work only.
type offline struct{}

func (offline) GetJournalEntries(context.Context, account.JournalQuery) (*account.JournalPage, error) {
	return nil, errors.New("offline")
}

func (offline) PutJournalEntries(context.Context, string, []account.PutEntry) ([]account.PutResult, error) {
	return nil, errors.New("offline")
}

// benchStore writes a store of 5000 message files in 50 conversations and
// returns it with the files' paths.
func benchStore(b *testing.B) (string, []string) {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "store")
	var rels []string
	for c := range 50 {
		conv := fmt.Sprintf("conv%02d@example.com", c)
		if err := os.MkdirAll(filepath.Join(dir, conv), 0o700); err != nil {
			b.Fatal(err)
		}
		for i := range 100 {
			rel := fmt.Sprintf("%s/m%03d.json", conv, i)
			data := fmt.Sprintf(`{"msgid":"%s-%d","remote_uri":"sip:%s","body":"message %d of an ordinary chat, a line or two long"}`, conv, i, conv, i)
			if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(rel)), []byte(data), 0o600); err != nil {
				b.Fatal(err)
			}
			rels = append(rels, rel)
		}
	}
	return dir, rels
}

func benchEngine(b *testing.B, dir string) *Engine { return benchEngineOf(b, dir, FormatJSON) }

// benchEngineOf is an engine on the store at path, of format, with no
// server (offline), its store checked usable.
func benchEngineOf(b *testing.B, path, format string) *Engine {
	b.Helper()
	k, err := seal.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	kr, err := seal.NewKeyring(k)
	if err != nil {
		b.Fatal(err)
	}
	db, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	e, err := New(Options{Account: testAccount, Store: path, StoreFormat: format, Keyring: kr, Remote: offline{}, DB: db})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(e.store.Close)
	if !e.rootPresent() {
		b.Fatal("store unusable: ", e.store.Unusable())
	}
	return e
}

// BenchmarkLocalWork measures the engine's look at a store of 5000
// message files: "index" reads, parses and indexes every file (the
// start-up scan of a new device), "rescan" walks a store whose files are
// all indexed and unchanged (the periodic rescan), and "changes" handles
// the watcher reporting every file, unchanged.
func BenchmarkLocalWork(b *testing.B) {
	dir, rels := benchStore(b)
	b.Run("index", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			e := benchEngine(b, dir)
			b.StartTimer()
			e.scan("", false)
			b.StopTimer()
			if n := len(e.rejected); n > 0 {
				b.Fatalf("%d files rejected", n)
			}
			e.db.Close()
			b.StartTimer()
		}
	})
	e := benchEngine(b, dir)
	defer e.db.Close()
	e.scan("", false)
	b.Run("rescan", func(b *testing.B) {
		for b.Loop() {
			e.scan("", false)
		}
	})
	b.Run("changes", func(b *testing.B) {
		for b.Loop() {
			e.handleChange(watch.Change{Paths: rels})
		}
	})
}

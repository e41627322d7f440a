package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/chatsync/chatsync/cmd/chatsync/config"
	"github.com/chatsync/chatsync/store/blinkdb"
	"github.com/chatsync/chatsync/store/msgdir"
)

// conversations and messages read the account's history from its store on
// this machine (a JSON directory or the client's database), as store export
// does: no daemon, no server. They only read, in short reads, so they are
// safe while the daemon and the client run.

func init() { extraCommands = append(extraCommands, newConversationsCmd, newMessagesCmd) }

// followPoll is how often messages --follow looks at the store.
var followPoll = time.Second

// followContext is the context of messages --follow, cancelled on Ctrl-C;
// tests replace it to stop the command.
var followContext = interruptible

// historyMessage is one message as messages --json prints it (one object
// per line). Message is the whole stored object.
type historyMessage struct {
	MsgID        string          `json:"msgid"`
	Conversation string          `json:"conversation"`
	Time         string          `json:"time"`
	Direction    string          `json:"direction"`
	RemoteURI    string          `json:"remote_uri"`
	Body         string          `json:"body"`
	ContentType  string          `json:"content_type,omitempty"`
	Message      json.RawMessage `json:"message"`

	at time.Time // Time parsed; zero when it does not parse
}

// historyConversation is one line of conversations (and its --json).
type historyConversation struct {
	Name     string `json:"name"`
	Messages int    `json:"messages"`
	LastTime string `json:"last_time"`

	last time.Time
}

type conversationsResult struct {
	Account       string                `json:"account"`
	Store         string                `json:"store"`
	StoreFormat   string                `json:"store_format"`
	Conversations []historyConversation `json:"conversations"`
}

func newConversationsCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "conversations",
		Short: "List the conversations of the account's local store: name, messages, last time",
		Long: `conversations reads the account's store on this machine (the JSON directory,
or only this account's rows of the Blink database) and prints one line per
conversation: the remote party, the number of messages and the time of the
newest one, the conversation with the newest message last. Messages deleted in
Blink Qt are not counted. It needs no daemon and changes nothing.`,
		Example: "  chatsync conversations\n  chatsync conversations --account alice@example.com --json",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			a, err := g.historyAccount()
			if err != nil {
				return err
			}
			ctx, stop := interruptible(c)
			defer stop()
			msgs, err := readHistory(ctx, a, g.stderr)
			if err != nil {
				return err
			}
			res := conversationsResult{Account: a.Address, Store: a.Store, StoreFormat: a.StoreFormat, Conversations: summarizeHistory(msgs)}
			if asJSON {
				return json.NewEncoder(g.stdout).Encode(res)
			}
			if len(res.Conversations) == 0 {
				fmt.Fprintf(g.stderr, "the store of %s, %s, holds no message yet\n", a.Address, a.Store)
				return nil
			}
			width := len("CONVERSATION")
			for _, cv := range res.Conversations {
				width = max(width, len(histLine(cv.Name)))
			}
			fmt.Fprintf(g.stdout, "%-*s  %8s  %s\n", width, "CONVERSATION", "MESSAGES", "LAST")
			for _, cv := range res.Conversations {
				fmt.Fprintf(g.stdout, "%-*s  %8d  %s\n", width, histLine(cv.Name), cv.Messages, histTime(cv.LastTime, cv.last))
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newMessagesCmd(g *globals) *cobra.Command {
	var conv string
	var tail int
	var follow, asJSON bool
	c := &cobra.Command{
		Use:   "messages",
		Short: "Print the messages of the account's local store, oldest first",
		Long: `messages reads the account's store on this machine (the JSON directory, or
only this account's rows of the Blink database) and prints one line per
message, oldest first: time (local), direction (→ sent, ← received), the
remote party and the body, its line breaks shown as ⏎. Messages deleted in
Blink Qt are not shown.

--conversation keeps one conversation (as ` + "`chatsync conversations`" + ` names it; a
sip: prefix may be given), --tail N only the last N messages. --follow keeps
running and prints each new message as it appears in the store, until Ctrl-C.
--json prints one JSON object per message and line (with --follow too).
It needs no daemon and changes nothing.`,
		Example: "  chatsync messages --conversation bob@example.com --tail 20\n  chatsync messages --follow\n  chatsync messages --json | jq -r .body",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if tail < -1 {
				return usagef("--tail takes a number of messages, 0 or more, not %d", tail)
			}
			want := conversationName(conv)
			a, err := g.historyAccount()
			if err != nil {
				return err
			}
			var ctx context.Context
			var stop context.CancelFunc
			if follow {
				ctx, stop = followContext(c)
			} else {
				ctx, stop = interruptible(c)
			}
			defer stop()
			p := &messagePrinter{w: g.stdout, json: asJSON, want: want}
			if !follow {
				msgs, err := readHistory(ctx, a, g.stderr)
				if err != nil {
					return err
				}
				msgs = p.filter(msgs)
				if len(msgs) == 0 && conv != "" {
					return fmt.Errorf("no message of the conversation %s in the store of %s: `chatsync conversations` lists them", histLine(conv), a.Address)
				}
				if tail >= 0 && len(msgs) > tail {
					msgs = msgs[len(msgs)-tail:]
				}
				return p.print(msgs)
			}
			return followHistory(ctx, a, g.stderr, p, tail)
		},
	}
	c.Flags().StringVar(&conv, "conversation", "", "only the messages of this conversation (the remote party, as `chatsync conversations` names it)")
	c.Flags().IntVar(&tail, "tail", -1, "only the last N messages (with --follow: the last N, then the new ones)")
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new messages as they appear in the store, until Ctrl-C")
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per message and line")
	return c
}

// historyAccount is the account whose store the history commands read.
func (g *globals) historyAccount() (config.Account, error) {
	cfg, err := g.loadConfig()
	if err != nil {
		return config.Account{}, err
	}
	a, err := g.pickAccount(cfg)
	if err != nil {
		return config.Account{}, err
	}
	if err := checkHistoryStore(a); err != nil {
		return config.Account{}, err
	}
	return a, nil
}

// checkHistoryStore is checkStore with the words of a reader.
func checkHistoryStore(a config.Account) error {
	if !a.IsDatabase() {
		fi, err := os.Stat(a.Store)
		switch {
		case err != nil && os.IsNotExist(err):
			return fmt.Errorf("the store of %s, %s, does not exist: no message to show (check store in the config, or start chatsync once to create it)", a.Address, a.Store)
		case err != nil:
			return err
		case !fi.IsDir():
			return fmt.Errorf("the store of %s, %s, is not a directory: for a Blink database set store_format in the config", a.Address, a.Store)
		}
		return nil
	}
	return checkStore(a)
}

// readHistory reads every message of the account's store, oldest first.
// Files that are not messages are skipped with one line on errw, as
// status lists them.
func readHistory(ctx context.Context, a config.Account, errw io.Writer) ([]historyMessage, error) {
	res := &storeCopy{}
	var out []historyMessage
	err := eachMessage(ctx, a.Store, a.StoreFormat, a.Address, 0, res, func(src string, m msgdir.Message) error {
		out = append(out, toHistory(m))
		return nil
	})
	if err != nil {
		return nil, storeErr(err, a)
	}
	if n := len(res.Refused); n > 0 {
		fmt.Fprintf(errw, "%d file(s) or row(s) of the store are not messages and are not shown (`chatsync status` lists them)\n", n)
	}
	sortHistory(out)
	return out, nil
}

// toHistory picks the fields a reader sees out of a message.
func toHistory(m msgdir.Message) historyMessage {
	var obj map[string]any
	_ = json.Unmarshal(m.Canonical, &obj) // Parse checked it is an object
	str := func(k string) string {
		switch v := obj[k].(type) {
		case string:
			return v
		case nil:
			return ""
		default:
			b, _ := json.Marshal(v)
			return string(b)
		}
	}
	h := historyMessage{
		MsgID:        m.MsgID,
		Conversation: conversationName(str("remote_uri")),
		Time:         str("time"),
		Direction:    str("direction"),
		RemoteURI:    str("remote_uri"),
		Body:         str("body"),
		ContentType:  str("content_type"),
		Message:      json.RawMessage(m.Canonical),
	}
	h.at = parseMessageTime(h.Time)
	return h
}

// conversationName is a remote URI as a conversation is named: without
// the sip: or sips: scheme.
func conversationName(uri string) string {
	uri = strings.TrimSpace(uri)
	for _, p := range []string{"sip:", "sips:"} {
		if len(uri) >= len(p) && strings.EqualFold(uri[:len(p)], p) {
			return uri[len(p):]
		}
	}
	return uri
}

// messageLayouts are the shapes a message's time takes: the clients' naive
// UTC text, and RFC 3339.
var messageLayouts = []string{"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00"}

// parseMessageTime parses a message's time; a time without a zone is UTC,
// as the clients store it. It returns the zero time for anything else.
func parseMessageTime(s string) time.Time {
	s = strings.TrimSpace(s)
	for _, l := range messageLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

// histTime is a message time for a person: local time to the second, or
// the text as stored when it does not parse.
func histTime(raw string, t time.Time) string {
	if t.IsZero() {
		if raw == "" {
			return "-"
		}
		return histLine(raw)
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// compareHistory orders messages by time (those without a readable time
// first, by their text), then by msgid, so that the order is the same on
// every run.
func compareHistory(a, b historyMessage) int {
	if c := a.at.Compare(b.at); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Time, b.Time); c != 0 {
		return c
	}
	if c := cmp.Compare(a.MsgID, b.MsgID); c != 0 {
		return c
	}
	return cmp.Compare(a.RemoteURI, b.RemoteURI)
}

func sortHistory(msgs []historyMessage) { slices.SortStableFunc(msgs, compareHistory) }

// summarizeHistory groups sorted messages by conversation, the one with the
// newest message last.
func summarizeHistory(msgs []historyMessage) []historyConversation {
	idx := map[string]int{}
	out := []historyConversation{}
	for _, m := range msgs {
		i, ok := idx[strings.ToLower(m.Conversation)]
		if !ok {
			i = len(out)
			idx[strings.ToLower(m.Conversation)] = i
			out = append(out, historyConversation{Name: m.Conversation})
		}
		out[i].Messages++
		// msgs is oldest first: the last one seen is the newest.
		out[i].LastTime, out[i].last = m.Time, m.at
	}
	slices.SortStableFunc(out, func(a, b historyConversation) int {
		if c := a.last.Compare(b.last); c != 0 {
			return c
		}
		if c := cmp.Compare(a.LastTime, b.LastTime); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return out
}

// messagePrinter prints messages as lines or JSON objects.
type messagePrinter struct {
	w    io.Writer
	json bool
	want string // the conversation to keep; "" keeps all
}

func (p *messagePrinter) filter(msgs []historyMessage) []historyMessage {
	if p.want == "" {
		return msgs
	}
	return slices.DeleteFunc(msgs, func(m historyMessage) bool { return !strings.EqualFold(m.Conversation, p.want) })
}

func (p *messagePrinter) print(msgs []historyMessage) error {
	enc := json.NewEncoder(p.w)
	for _, m := range msgs {
		var err error
		if p.json {
			err = enc.Encode(m)
		} else {
			_, err = fmt.Fprintf(p.w, "%s  %s %s  %s\n", histTime(m.Time, m.at), histArrow(m.Direction), histLine(m.Conversation), histLine(m.Body))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// histArrow shows a direction: → sent, ← received.
func histArrow(direction string) string {
	switch strings.ToLower(direction) {
	case "outgoing", "outbound", "out", "sent":
		return "→"
	case "incoming", "inbound", "in", "received":
		return "←"
	}
	return "·"
}

// histLine shows a body on one line: line breaks as ⏎, tabs as a space,
// and other control characters (which could drive the terminal) as �.
func histLine(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\r':
			return '⏎'
		case r == '\t':
			return ' '
		case unicode.IsControl(r):
			return '\uFFFD'
		}
		return r
	}, s)
}

// followHistory prints the last tail messages (all with tail < 0), then
// every message that appears in the store, until ctx ends. It looks at
// the store every followPoll: a JSON directory's new or changed files, a
// database when another program committed a change.
func followHistory(ctx context.Context, a config.Account, errw io.Writer, p *messagePrinter, tail int) error {
	var src historySource
	if a.IsDatabase() {
		db, err := openAccountDB(a)
		if err != nil {
			return err
		}
		defer db.Close()
		src = &histDBSource{db: db}
	} else {
		src = &histDirSource{root: a.Store, files: map[string]histFileSeen{}}
	}
	printed := map[string]bool{} // msgid and remote URI of every message seen
	first := true
	tick := time.NewTicker(followPoll)
	defer tick.Stop()
	for {
		msgs, err := src.read(ctx)
		if ctx.Err() != nil {
			return nil // Ctrl-C: the normal end of --follow
		}
		if err != nil {
			return storeErr(err, a)
		}
		var fresh []historyMessage
		for _, m := range msgs {
			k := m.MsgID + "\x00" + strings.ToLower(m.Conversation)
			if !printed[k] {
				printed[k] = true
				fresh = append(fresh, m)
			}
		}
		sortHistory(fresh)
		fresh = p.filter(fresh)
		if first && tail >= 0 && len(fresh) > tail {
			fresh = fresh[len(fresh)-tail:]
		}
		first = false
		if err := p.print(fresh); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// historySource gives the messages of a store that may be new since the
// last read (or all of them, which follow tells apart).
type historySource interface {
	read(ctx context.Context) ([]historyMessage, error)
}

// histDirSource reads a JSON directory, parsing only the files that are new or
// changed since the last read.
type histDirSource struct {
	root  string
	files map[string]histFileSeen
}

type histFileSeen struct {
	size int64
	mod  time.Time
}

func (s *histDirSource) read(ctx context.Context) ([]historyMessage, error) {
	r, err := os.OpenRoot(s.root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []historyMessage
	err = msgdir.WalkDir(r, "", func(rel string, d fs.DirEntry, err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if err != nil {
			if rel == "" {
				return err
			}
			return nil
		}
		if d.IsDir() {
			if rel != "" && msgdir.IgnoredDir(d.Name()) {
				return fs.SkipDir
			}
			return nil
		}
		if msgdir.Ignored(d.Name()) || !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		now := histFileSeen{size: fi.Size(), mod: fi.ModTime()}
		if s.files[rel] == now {
			return nil
		}
		data, err := msgdir.ReadFile(r, rel, 0)
		if err != nil {
			return nil
		}
		m, err := msgdir.Parse(data, 0)
		if err != nil {
			return nil // not complete yet, or not a message: look again later
		}
		s.files[rel] = now
		out = append(out, toHistory(m))
		return nil
	})
	return out, err
}

// histDBSource reads the account's rows of a database when another program
// committed a change since the last read.
type histDBSource struct {
	db      *blinkdb.DB
	changes string
	read1   bool
}

func (s *histDBSource) read(ctx context.Context) ([]historyMessage, error) {
	tok, err := s.db.Changes(ctx)
	if err != nil {
		return nil, err
	}
	if s.read1 && tok == s.changes {
		return nil, nil
	}
	snap, err := s.db.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	s.changes, s.read1 = tok, true
	var out []historyMessage
	for _, row := range snap {
		if row.Deleted {
			continue
		}
		m, err := msgdir.Parse(row.Message, 0)
		if err != nil {
			continue
		}
		out = append(out, toHistory(m))
	}
	return out, nil
}

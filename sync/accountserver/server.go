package accountserver

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	bolt "go.etcd.io/bbolt"
)

// DefaultMaxBody is the request body limit when Options.MaxBody is 0.
const DefaultMaxBody = 16 << 20

// DefaultPageRows is the real server's cap on the rows of one
// get_journal_entries page, used when Options.PageRows is 0.
const DefaultPageRows = 5000

// StrictPageBytesLimit is the page size at which a stock real server
// (PHP memory_limit=128M, about 5x the rows' bytes) runs out of memory
// (PROTOCOL §12). chatsync-server --strict-compat uses it as
// Options.PageBytesLimit unless --page-bytes-limit is given.
const StrictPageBytesLimit = 20_000_000

// Path is the only URL path the server answers.
const Path = "/settings.phtml"

const (
	contentTypeHTML = "text/html; charset=UTF-8"
	dbFileName      = "chatsync-server.db"
	nonceKeyFile    = "nonce.key"
)

// Options configure a Server.
type Options struct {
	// DataDir holds the bbolt database and the nonce key. It is created
	// (mode 0700) if missing. Required.
	DataDir string
	// Accounts are the served accounts (see LoadAccounts). Required
	// unless AccountsTable is set.
	Accounts []Account
	// AccountsTable, with JournalMySQL, serves the accounts of the
	// chatsync_accounts table in the journal's database instead of
	// Accounts (see AccountsTableDDL, created if missing, never altered).
	// The table is re-read every AccountsReload and by ReloadAccounts; a
	// bad row is logged with its address and skipped.
	AccountsTable bool
	// AccountsReload is how often AccountsTable is re-read; 0 means
	// DefaultAccountsReload.
	AccountsReload time.Duration
	// StrictCompat reproduces the real server's bugs where the default
	// implements the intended behaviour: limit < 5000 returns no rows,
	// delete_journal_entries deletes nothing, get_monthly_usage fails.
	// It also turns off our long-poll extension (the wait parameter of
	// get_journal_entries is ignored, as the real server ignores it).
	StrictCompat bool
	// MaxBody limits request bodies in bytes; 0 means DefaultMaxBody.
	MaxBody int64

	// The options below reproduce how the real server behaves under load
	// and faults (PROTOCOL §12). Each works on its own; StrictCompat does
	// not set them (chatsync-server --strict-compat sets PageBytesLimit
	// and ShuffleSameSecond).

	// PageBytesLimit, if positive, is the largest get_journal_entries
	// reply body in bytes: a page whose JSON would be larger is answered
	// with HTTP 500 and an empty body, like the real server running out
	// of PHP memory (it needs about 5x the rows' bytes, so memory_limit
	// 128M fails at about StrictPageBytesLimit). 0 means no limit.
	PageBytesLimit int64
	// PageRows caps the rows of one get_journal_entries page; 0 means
	// DefaultPageRows. A limit parameter that is honoured (not in
	// StrictCompat, where 0 < limit < 5000 gives no rows) gives
	// min(limit, PageRows) rows.
	PageRows int
	// ShuffleSameSecond makes rows with the same one-second timestamp
	// come back in no defined order, as on real MariaDB: within a page
	// each second's rows are in random order, and when the page is cut at
	// its cap inside a second, which rows of that last second are in the
	// page is random (not the lowest ids). Rows of the earlier seconds of
	// a page are always all there.
	ShuffleSameSecond bool
	// ShuffleSeed seeds the random source of ShuffleSameSecond, so tests
	// are reproducible; 0 means a seed taken from the clock.
	ShuffleSeed uint64
	// IgnoreAfterID ignores the after_id parameter, like the historical
	// Mongo backend (PROTOCOL §4.6): every page starts at the account's
	// first row. except_uuid and after_timestamp still apply.
	IgnoreAfterID bool
	// MaxRowBytes, if positive, mimics MariaDB's max_allowed_packet: a
	// put_journal_entries element whose data is longer than this many
	// bytes is not stored and its result has "journal_id":null; the other
	// rows of the batch are stored.
	MaxRowBytes int
	// HaltOnError (only with MaxRowBytes) mimics PHP's
	// Halt_On_Error=yes instead: the put stops at the first oversized
	// element. The rows before it are stored, it and the rows after it
	// are not, and the reply is HTTP 200 with the MySQL error text
	// (HaltOnErrorBody) instead of JSON.
	HaltOnError bool

	// JournalMySQL, if set, keeps the journal in CDRTool's client_journal
	// table in this MySQL/MariaDB database (created if missing, never
	// altered; see ClientJournalDDL and ParseJournalURL) instead of the
	// bbolt file. Several servers may share it; see mysqlJournal for why
	// their readers never skip a row. The account state of the write
	// actions stays in the bbolt file of DataDir, per server.
	JournalMySQL *mysql.Config
	// MySQLLockTimeout is how long a put waits for its account's named
	// lock; 0 means DefaultMySQLLockTimeout.
	MySQLLockTimeout time.Duration
	// MySQLNoLock and MySQLNoHorizon turn off what keeps the MySQL
	// journal's cursor from skipping: the named lock of puts, the horizon
	// of gets. Only for the tests that show the cursor then skips.
	MySQLNoLock, MySQLNoHorizon bool

	// Now is the clock for journal timestamps, nonces and monthly usage;
	// nil means time.Now. Tests set it to put many rows into one second or
	// to expire nonces.
	Now func() time.Time
	// Logger receives operational logs; nil discards them. Passwords and
	// journal data are never logged.
	Logger *slog.Logger
	// Intercept, if set, is called after authentication and before the
	// action runs. If it returns true it has written the reply and the
	// action is skipped. It lets tests inject faults (errors, delays,
	// dropped connections) for a given account and action.
	Intercept func(w http.ResponseWriter, r *http.Request, account, action string) bool
}

// Server implements the SIP Account API (settings.phtml) of PROTOCOL.md on
// top of a bbolt file. It is an http.Handler and safe for concurrent use.
type Server struct {
	opts     Options
	db       *bolt.DB     // account state, and the journal unless another store is given
	journal  journalStore // see journalStore
	nonceKey string
	accts    atomic.Pointer[accountSet] // swapped whole by SetAccounts
	acctsTab *accountsTable             // nil: accounts from Options.Accounts
	reloadMu sync.Mutex                 // one table reload at a time
	done     chan struct{}              // closed by Close: ends the reload loop
	loopDone chan struct{}              // closed when the reload loop has ended
	log      *slog.Logger

	rngMu sync.Mutex
	rng   *mrand.Rand // for ShuffleSameSecond

	// Long polls of get_journal_entries (see waitJournal): puts[account]
	// is closed by the next put of rows for that account and then
	// dropped, so every waiter of that account wakes once per put.
	putMu     sync.Mutex
	puts      map[string]chan struct{}
	waiting   atomic.Int64  // requests held now
	ending    chan struct{} // closed by EndWaits
	endOnce   sync.Once
	closeOnce sync.Once
	closeErr  error
}

// New opens (or creates) the data directory and returns a Server. Close
// it to release the database.
func New(opts Options) (*Server, error) {
	if opts.DataDir == "" {
		return nil, errors.New("accountserver: no data directory given")
	}
	if opts.AccountsTable {
		if opts.JournalMySQL == nil {
			return nil, errors.New("accountserver: the accounts table is in the MySQL journal's database: set JournalMySQL")
		}
		if len(opts.Accounts) > 0 {
			return nil, errors.New("accountserver: give Accounts or AccountsTable, not both")
		}
		if opts.AccountsReload <= 0 {
			opts.AccountsReload = DefaultAccountsReload
		}
	} else if len(opts.Accounts) == 0 {
		return nil, errors.New("accountserver: no accounts given")
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	givenNow := opts.Now
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.PageRows <= 0 {
		opts.PageRows = DefaultPageRows
	}
	seed := opts.ShuffleSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	s := &Server{
		rng:    mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		opts:   opts,
		log:    opts.Logger,
		done:   make(chan struct{}),
		puts:   map[string]chan struct{}{},
		ending: make(chan struct{}),
	}
	if err := s.SetAccounts(opts.Accounts); err != nil {
		return nil, fmt.Errorf("accountserver: %w", err)
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("accountserver: %w", err)
	}
	key, err := loadNonceKey(filepath.Join(opts.DataDir, nonceKeyFile))
	if err != nil {
		return nil, fmt.Errorf("accountserver: nonce key: %w", err)
	}
	s.nonceKey = key
	dbPath := filepath.Join(opts.DataDir, dbFileName)
	db, err := bolt.Open(dbPath, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("accountserver: %s is locked: is another chatsync-server using this data directory?", dbPath)
		}
		return nil, fmt.Errorf("accountserver: open %s: %w", dbPath, err)
	}
	if err := initDB(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("accountserver: %s: %w", dbPath, err)
	}
	s.db = db
	s.journal = &boltJournal{db: db, now: s.now, shuffle: s.shuffle}
	if opts.JournalMySQL != nil {
		// With a clock of its own (tests), timestamps come from it;
		// otherwise from the database's NOW(), as CDRTool's.
		j, err := openMySQLJournal(opts.JournalMySQL, givenNow, opts.MySQLLockTimeout, opts.MySQLNoLock, opts.MySQLNoHorizon, s.log)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("accountserver: %w", err)
		}
		s.journal = j
		if opts.AccountsTable {
			t, err := openAccountsTable(j.db)
			if err != nil {
				j.close()
				db.Close()
				return nil, fmt.Errorf("accountserver: %w", err)
			}
			s.acctsTab = t
			if err := s.ReloadAccounts(); err != nil {
				j.close()
				db.Close()
				return nil, fmt.Errorf("accountserver: %w", err)
			}
			s.loopDone = make(chan struct{})
			go s.reloadLoop()
		}
	}
	return s, nil
}

// Close ends held waits (EndWaits) and closes the database; later calls
// do nothing. Requests still running fail.
func (s *Server) Close() error {
	s.EndWaits()
	s.closeOnce.Do(func() {
		close(s.done)
		if s.loopDone != nil {
			<-s.loopDone
		}
		s.closeErr = errors.Join(s.journal.close(), s.db.Close())
	})
	return s.closeErr
}

// EndWaits makes every get_journal_entries held by its wait parameter
// answer now, with the page as it is, and later ones answer at once. Call
// it before http.Server.Shutdown (or httptest.Server.Close), which waits
// for active requests and would otherwise wait out long polls of up to
// MaxWait. It cannot be undone.
func (s *Server) EndWaits() { s.endOnce.Do(func() { close(s.ending) }) }

// Waiting returns how many get_journal_entries requests are held by their
// wait parameter right now (for tests and monitoring).
func (s *Server) Waiting() int { return int(s.waiting.Load()) }

// loadNonceKey reads the digest nonce key, creating a random one (mode
// 0600) on first use, so nonces stay valid across restarts.
func loadNonceKey(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k := strings.TrimSpace(string(b))
		if len(k) < 32 {
			return "", fmt.Errorf("%s is too short; delete it to make a new one", path)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	k := hex.EncodeToString(raw[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) { // lost a race with another opener
			return loadNonceKey(path)
		}
		return "", err
	}
	if _, err := f.WriteString(k + "\n"); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", err
	}
	return k, f.Close()
}

func (s *Server) now() time.Time { return s.opts.Now() }

// params are the request parameters merged like PHP's $_REQUEST: the query
// string, then the form body on top; within one source the last
// duplicate wins.
type params map[string]string

func (p params) get(k string) string { return p[k] }

func (p params) lookup(k string) (string, bool) {
	v, ok := p[k]
	return v, ok
}

// parsePHPQuery splits a query string like PHP does: it never fails;
// invalid percent escapes stay literal.
func parsePHPQuery(dst params, q string) {
	for part := range strings.SplitSeq(q, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		k = phpURLDecode(k)
		if k == "" {
			continue
		}
		dst[k] = phpURLDecode(v)
	}
}

func phpURLDecode(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b.WriteByte(' ')
		case c == '%' && i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]):
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

var errBodyTooLarge = errors.New("request body too large")

// readParams merges query and body parameters. Form bodies
// (urlencoded or multipart) are read for any method.
func (s *Server) readParams(r *http.Request) (params, error) {
	p := params{}
	parsePHPQuery(p, r.URL.RawQuery)
	if r.ContentLength > s.opts.MaxBody {
		return nil, errBodyTooLarge
	}
	ct, ctParams, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "application/x-www-form-urlencoded" && ct != "multipart/form-data" {
		return p, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, s.opts.MaxBody+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > s.opts.MaxBody {
		return nil, errBodyTooLarge
	}
	if ct == "application/x-www-form-urlencoded" {
		parsePHPQuery(p, string(body))
		return p, nil
	}
	mr := multipart.NewReader(bytes.NewReader(body), ctParams["boundary"])
	for {
		part, err := mr.NextPart()
		if err != nil {
			break // PHP ignores a malformed tail too
		}
		name := part.FormName()
		if name == "" || part.FileName() != "" {
			continue
		}
		v, err := io.ReadAll(part)
		if err != nil {
			break
		}
		p[name] = string(v)
	}
	return p, nil
}

// ServeHTTP answers /settings.phtml; every other path is 404.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != Path {
		http.NotFound(w, r)
		return
	}
	p, err := s.readParams(r)
	if err != nil {
		if errors.Is(err, errBodyTooLarge) {
			writeJSON(w, http.StatusRequestEntityTooLarge, result{Success: false, ErrorMessage: fmt.Sprintf("Request body larger than %d bytes", s.opts.MaxBody)})
			return
		}
		s.log.Info("reading request failed", "remote", r.RemoteAddr, "err", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	acct, outcome := s.authenticate(w, r, p)
	if outcome != authOK {
		return
	}
	action := p.get("action")
	if s.opts.Intercept != nil && s.opts.Intercept(w, r, acct.Address, action) {
		return
	}
	rq := &request{s: s, w: w, r: r, p: p, acct: acct, ip: remoteIP(r)}
	rq.dispatch(action)
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// result is the {success, error_message} reply of set/add actions.
type result struct {
	Success      bool   `json:"success"`
	ErrorMessage string `json:"error_message"`
}

func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", contentTypeHTML)
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// writeJSON writes v as PHP's json_encode would, prefixed with prefix
// (the stray text some actions print first).
func writeJSONPrefixed(w http.ResponseWriter, status int, prefix string, v any) {
	b, err := phpJSON(v)
	if err != nil { // only on programming errors; PHP would print nothing
		w.Header().Set("Content-Type", contentTypeHTML)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentTypeHTML)
	w.WriteHeader(status)
	io.WriteString(w, prefix)
	w.Write(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) { writeJSONPrefixed(w, status, "", v) }

// fatal mimics a PHP fatal error with display_errors off: 500, empty body.
func fatal(w http.ResponseWriter) {
	w.Header().Set("Content-Type", contentTypeHTML)
	w.WriteHeader(http.StatusInternalServerError)
}

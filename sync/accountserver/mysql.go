package accountserver

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// ClientJournalDDL is CDRTool's client_journal table (PROTOCOL §4.1),
// which the MySQL journal creates only if it is missing and never alters.
// The collation is latin1_swedish_ci, as observed on CDRTool's database
// (except_uuid compares case-insensitively, PROTOCOL §11.1).
const ClientJournalDDL = "CREATE TABLE IF NOT EXISTS `client_journal` (\n" +
	"  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,\n" +
	"  `timestamp` datetime NOT NULL DEFAULT '0000-00-00 00:00:00',\n" +
	"  `account` varchar(128) NOT NULL DEFAULT '',\n" +
	"  `uuid` varchar(256) NOT NULL DEFAULT '',\n" +
	"  `ip_address` varchar(256) NOT NULL DEFAULT '',\n" +
	"  `data` longblob,\n" +
	"  PRIMARY KEY (`id`),\n" +
	"  KEY `account_idx` (`account`),\n" +
	"  KEY `uuid_idx` (`uuid`)\n" +
	") ENGINE=InnoDB DEFAULT CHARSET=latin1"

// MySQLPollInterval is how often a held get_journal_entries re-reads the
// MySQL journal, to see rows put through other server processes.
const MySQLPollInterval = 250 * time.Millisecond

// DefaultMySQLLockTimeout is how long a put waits for its account's named
// lock before it fails (journal_id null for its rows).
const DefaultMySQLLockTimeout = 10 * time.Second

// ParseJournalURL reads mysql://USER@HOST[:PORT]/DB[?tls=true|skip-verify|preferred|NAME]
// into a driver configuration with password (which never comes from the
// URL: a password in it is an error, so that it does not show in ps).
// NAME is a TLS configuration registered with mysql.RegisterTLSConfig.
func ParseJournalURL(raw, password string) (*mysql.Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "mysql" {
		return nil, fmt.Errorf("%q: want mysql://USER@HOST:PORT/DB", raw)
	}
	if _, ok := u.User.Password(); ok {
		return nil, errors.New("the journal URL holds a password: give it in a file (--journal-password-file) or CHATSYNC_JOURNAL_PASSWORD instead")
	}
	db := strings.TrimPrefix(u.Path, "/")
	if u.User.Username() == "" || u.Hostname() == "" || db == "" || strings.Contains(db, "/") {
		return nil, fmt.Errorf("%q: want mysql://USER@HOST:PORT/DB", raw)
	}
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.DBName = u.User.Username(), password, "tcp", db
	port := u.Port()
	if port == "" {
		port = "3306"
	}
	c.Addr = net.JoinHostPort(u.Hostname(), port)
	for k, v := range u.Query() {
		switch k {
		case "tls":
			c.TLSConfig = v[0]
		default:
			return nil, fmt.Errorf("%q: unknown parameter %q (known: tls)", raw, k)
		}
	}
	if c.TLSConfig != "" {
		// Let the driver check the name; FormatDSN/ParseDSN resolves it.
		if _, err := mysql.ParseDSN(c.FormatDSN()); err != nil {
			return nil, fmt.Errorf("%q: %w", raw, err)
		}
	}
	return c, nil
}

// mysqlJournal is the journal in CDRTool's client_journal table.
//
// # Why the cursor never skips
//
// A reader pages with id > after_id, after_id being the highest id it has
// seen. That skips a row exactly when the row becomes visible after a row
// with a higher id of the same account was read: auto_increment hands out
// ids at INSERT time, but transactions commit in any order.
//
//  1. Rows put by chatsync-server: every put takes the MySQL named lock
//     GET_LOCK('chatsync_journal:'+account) on its connection before its
//     first INSERT and releases it after COMMIT (or ROLLBACK); a put that
//     does not get the lock inserts nothing. The lock is the server's, so
//     it holds across any number of chatsync-server processes on one
//     database, and it goes away with the session if a process dies (its
//     transaction rolls back first). So for one account, the rows of one
//     put are given ids and committed before the next put is given any:
//     when a reader sees a row of chatsync-server, every row of that
//     account with a lower id put by chatsync-server is committed (or
//     rolled back, and will never appear).
//  2. Rows put by others, such as CDRTool's PHP code, which takes no lock:
//     after reading a page (committed rows, a fresh snapshot), the reader
//     reads the same range again at READ UNCOMMITTED, which also sees rows
//     inserted by transactions that have not committed. If that read holds
//     an id the page lacks, the page is cut just below it: the reader
//     gets only rows below the oldest row still in flight, and that row
//     comes in a later page, once committed. This is exact when an INSERT
//     allocates its id and enters the index atomically with respect to
//     other INSERTs, i.e. with innodb_autoinc_lock_mode=0 ("traditional",
//     the AUTO-INC lock is held to the end of the statement). With the
//     default 1 (and 2), a foreign INSERT has a window of one row insert
//     between taking its id and appearing in the index; a page read in
//     that window can still skip its row. Open logs the mode.
//
// Replicas are not covered: read from the primary.
type mysqlJournal struct {
	db          *sql.DB
	now         func() time.Time // nil: the database's NOW()
	lockTimeout time.Duration
	// noLock and noHorizon turn off the named lock and the horizon, for
	// the tests that show what each prevents.
	noLock, noHorizon bool
}

// mysqlLockName is the named lock of account (at most 64 characters, the
// limit of MySQL 5.7+).
func mysqlLockName(account string) string {
	n := "chatsync_journal:" + account
	if len(n) > 64 {
		h := sha256.Sum256([]byte(account))
		n = "chatsync_journal:" + hex.EncodeToString(h[:])[:40]
	}
	return n
}

func openMySQLJournal(c *mysql.Config, now func() time.Time, lockTimeout time.Duration, noLock, noHorizon bool, log *slog.Logger) (*mysqlJournal, error) {
	c = c.Clone()
	if c.Params == nil {
		c.Params = map[string]string{}
	}
	// Timestamps in UTC like the bbolt journal, with NOW() as CDRTool.
	c.Params["time_zone"] = "'+00:00'"
	c.ParseTime = false
	c.MaxAllowedPacket = 0 // the server's max_allowed_packet
	connector, err := mysql.NewConnector(c)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(connector)
	db.SetMaxIdleConns(16)
	db.SetConnMaxIdleTime(5 * time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, ClientJournalDDL); err != nil {
		db.Close()
		return nil, fmt.Errorf("mysql journal on %s/%s: %w", c.Addr, c.DBName, err)
	}
	// An existing table is never altered: check that it has the columns.
	if _, err := db.ExecContext(ctx, "SELECT id, `timestamp`, account, uuid, ip_address, data FROM client_journal LIMIT 0"); err != nil {
		db.Close()
		return nil, fmt.Errorf("mysql journal: client_journal is not CDRTool's table: %w", err)
	}
	var mode sql.NullInt64
	if err := db.QueryRowContext(ctx, "SELECT @@innodb_autoinc_lock_mode").Scan(&mode); err == nil && mode.Int64 != 0 {
		log.Info("mysql journal: innodb_autoinc_lock_mode is not 0: chatsync-server's own rows are never skipped, "+
			"rows that other programs (CDRTool) insert could be in a window of one row insert (see the README)",
			"innodb_autoinc_lock_mode", mode.Int64)
	}
	if lockTimeout <= 0 {
		lockTimeout = DefaultMySQLLockTimeout
	}
	return &mysqlJournal{db: db, now: now, lockTimeout: lockTimeout, noLock: noLock, noHorizon: noHorizon}, nil
}

func (j *mysqlJournal) pollInterval() time.Duration { return MySQLPollInterval }
func (j *mysqlJournal) close() error                { return j.db.Close() }

// put inserts the rows in one transaction under the account's named lock
// (see mysqlJournal), one INSERT per row as CDRTool does.
func (j *mysqlJournal) put(account, uuid, ip string, data []string) (ids []uint64, err error) {
	ids = make([]uint64, 0, len(data))
	if len(data) == 0 {
		return ids, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), j.lockTimeout+60*time.Second)
	defer cancel()
	conn, err := j.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if !j.noLock {
		var got sql.NullInt64
		secs := strconv.FormatFloat(j.lockTimeout.Seconds(), 'f', 3, 64)
		if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, "+secs+")", mysqlLockName(account)).Scan(&got); err != nil {
			return nil, fmt.Errorf("journal lock: %w", err)
		}
		if got.Int64 != 1 {
			return nil, fmt.Errorf("journal lock of %s: not granted within %v", account, j.lockTimeout)
		}
		defer func() {
			if _, rerr := conn.ExecContext(context.Background(), "DO RELEASE_LOCK(?)", mysqlLockName(account)); rerr != nil {
				// Drop the session, and the lock with it.
				conn.Raw(func(any) error { return driver.ErrBadConn })
			}
		}()
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	ts := "NOW()"
	var args []any
	if j.now != nil {
		ts = "?"
		args = []any{j.now().UTC().Format(timeLayout)}
	}
	stmt, err := tx.PrepareContext(ctx, "INSERT INTO client_journal (`timestamp`, account, uuid, ip_address, data) VALUES ("+ts+", ?, ?, ?, ?)")
	if err != nil {
		return nil, err
	}
	defer stmt.Close()
	for _, d := range data {
		res, err := stmt.ExecContext(ctx, append(args, account, uuid, ip, []byte(d))...)
		if err != nil {
			return nil, err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return nil, err
		}
		ids = append(ids, uint64(id))
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return ids, nil
}

// where is the WHERE clause of q's rows with id above after.
func (q journalQuery) where(after uint64) (string, []any) {
	w := "account = ?"
	args := []any{q.account}
	if q.exceptUUID != "" {
		w += " AND uuid <> ?"
		args = append(args, q.exceptUUID)
	}
	if q.afterTimestamp != "" {
		w += " AND `timestamp` > ?"
		args = append(args, q.afterTimestamp)
	}
	w += " AND id > ?"
	return w, append(args, after)
}

// getQuery is the page query (EXPLAIN'd in a test).
func (q journalQuery) getQuery(after uint64) (string, []any) {
	w, args := q.where(after)
	return "SELECT id, CAST(`timestamp` AS CHAR), account, uuid, ip_address, data FROM client_journal WHERE " + w +
		" ORDER BY id LIMIT " + strconv.Itoa(q.limit), args
}

func (j *mysqlJournal) query(q journalQuery) ([]Entry, error) {
	out := []Entry{}
	if q.limit <= 0 {
		return out, nil
	}
	after := uint64(max(q.afterID, 0))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	query, args := q.getQuery(after)
	rows, err := j.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	out, err = scanEntries(rows, out)
	if err != nil {
		return nil, err
	}
	if j.noHorizon || len(out) == 0 {
		return out, nil
	}
	// The horizon (see mysqlJournal): the same range, uncommitted rows too.
	tx, err := j.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadUncommitted, ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	w, args := q.where(after)
	dirty, err := tx.QueryContext(ctx, "SELECT id FROM client_journal WHERE "+w+" AND id <= ? ORDER BY id", append(args, out[len(out)-1].ID)...)
	if err != nil {
		return nil, err
	}
	defer dirty.Close()
	i := 0
	for dirty.Next() {
		var id uint64
		if err := dirty.Scan(&id); err != nil {
			return nil, err
		}
		for i < len(out) && out[i].ID < id {
			i++ // in the page, deleted since
		}
		if i < len(out) && out[i].ID == id {
			i++
			continue
		}
		// id is not committed yet (or committed after the page was
		// read): serve only the rows below it.
		return out[:i], nil
	}
	return out, dirty.Err()
}

func (j *mysqlJournal) delete(account string, ids []int64) error {
	var keep []any
	for _, id := range ids {
		if id > 0 {
			keep = append(keep, id)
		}
	}
	if len(keep) == 0 {
		return nil
	}
	_, err := j.db.Exec("DELETE FROM client_journal WHERE account = ? AND id IN (?"+strings.Repeat(",?", len(keep)-1)+")",
		append([]any{account}, keep...)...)
	return err
}

func (j *mysqlJournal) entries(account string) ([]Entry, error) {
	q := journalQuery{account: strings.ToLower(account), limit: 1 << 30}
	query, args := q.getQuery(0)
	rows, err := j.db.Query(query, args...)
	if err != nil {
		return nil, err
	}
	return scanEntries(rows, nil)
}

// scanEntries appends the rows of a page query (getQuery) to out, and
// closes them.
func scanEntries(rows *sql.Rows, out []Entry) ([]Entry, error) {
	defer rows.Close()
	for rows.Next() {
		var e Entry
		var data []byte
		if err := rows.Scan(&e.ID, &e.Timestamp, &e.Account, &e.UUID, &e.IPAddress, &data); err != nil {
			return nil, err
		}
		e.Data = string(data)
		out = append(out, e)
	}
	return out, rows.Err()
}

package accountserver

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// AccountsTableDDL is the accounts table of Options.AccountsTable, in the
// MySQL journal's database. It is created only if missing and never
// altered. The columns hold what an [[account]] of accounts.toml holds:
// password is the clear-text SIP password (empty when the account has only a
// web password or an HA1), web_password and ha1 are NULL when unset, and
// seed is a JSON object with the other keys of accounts.toml under the
// same names (email, first, aliases, history, voicemail, …), NULL or empty
// for none.
const AccountsTableDDL = "CREATE TABLE IF NOT EXISTS `chatsync_accounts` (\n" +
	"  `address` varchar(128) NOT NULL,\n" +
	"  `password` varchar(255) NOT NULL DEFAULT '',\n" +
	"  `web_password` varchar(255) DEFAULT NULL,\n" +
	"  `ha1` char(32) DEFAULT NULL,\n" +
	"  `seed` longtext DEFAULT NULL,\n" +
	"  PRIMARY KEY (`address`)\n" +
	") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"

// DefaultAccountsReload is how often the accounts table is re-read.
const DefaultAccountsReload = 10 * time.Second

// accountSet is the served accounts; SetAccounts swaps it whole, so a
// request sees one set from its authentication on.
type accountSet struct {
	accounts map[string]*Account // by address
	domains  map[string]bool
}

// SetAccounts replaces the served accounts (validated as LoadAccounts
// does). Requests already authenticated finish with the account they had;
// the account state of the write actions (kept by address) stays.
func (s *Server) SetAccounts(accts []Account) error {
	set := &accountSet{accounts: map[string]*Account{}, domains: map[string]bool{}}
	for i := range accts {
		a := accts[i] // copy: the server owns its accounts
		if err := a.normalize(); err != nil {
			return fmt.Errorf("account %s: %w", a.Address, err)
		}
		if set.accounts[a.Address] != nil {
			return fmt.Errorf("account %s is listed twice", a.Address)
		}
		set.accounts[a.Address] = &a
		set.domains[a.domain()] = true
	}
	s.accts.Store(set)
	return nil
}

// Accounts returns the addresses served now, in no defined order.
func (s *Server) Accounts() []string {
	set := s.accts.Load()
	out := make([]string, 0, len(set.accounts))
	for a := range set.accounts {
		out = append(out, a)
	}
	return out
}

// ReloadAccounts re-reads the accounts table (Options.AccountsTable) and
// swaps the served accounts. Bad rows are logged and skipped; if the table
// cannot be read the served accounts stay and the error is returned.
// Without AccountsTable it does nothing.
func (s *Server) ReloadAccounts() error {
	if s.acctsTab == nil {
		return nil
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() { // Close does not wait out a slow database
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	accts, err := s.acctsTab.load(ctx, s.log)
	if err != nil {
		return fmt.Errorf("accounts table: %w", err)
	}
	if err := s.SetAccounts(accts); err != nil {
		return fmt.Errorf("accounts table: %w", err) // load validated each row: not expected
	}
	if len(accts) == 0 {
		s.log.Warn("accounts table: no valid account in chatsync_accounts; every login is refused")
	}
	s.log.Debug("accounts table reloaded", "accounts", len(accts))
	return nil
}

func (s *Server) reloadLoop() {
	defer close(s.loopDone)
	t := time.NewTicker(s.opts.AccountsReload)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			if err := s.ReloadAccounts(); err != nil {
				s.log.Warn("accounts table not reloaded; serving the accounts read before", "err", err)
			}
		}
	}
}

// accountsTable reads chatsync_accounts.
type accountsTable struct{ db *sql.DB }

func openAccountsTable(db *sql.DB) (*accountsTable, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, AccountsTableDDL); err != nil {
		return nil, fmt.Errorf("accounts table: %w", err)
	}
	if _, err := db.ExecContext(ctx, "SELECT address, password, web_password, ha1, seed FROM chatsync_accounts LIMIT 0"); err != nil {
		return nil, fmt.Errorf("accounts table: chatsync_accounts lacks a column of AccountsTableDDL (it is never altered): %w", err)
	}
	return &accountsTable{db: db}, nil
}

// rowLogger is the part of slog.Logger load uses.
type rowLogger interface {
	Warn(msg string, args ...any)
}

// load reads every row; a row that is not a valid account is logged with
// its address and skipped.
func (t *accountsTable) load(ctx context.Context, log rowLogger) ([]Account, error) {
	rows, err := t.db.QueryContext(ctx, "SELECT address, password, web_password, ha1, seed FROM chatsync_accounts ORDER BY address")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Account
	seen := map[string]bool{}
	for rows.Next() {
		var addr, pw, webPW, ha1, seed sql.NullString
		if err := rows.Scan(&addr, &pw, &webPW, &ha1, &seed); err != nil {
			return nil, err
		}
		a, err := accountFromRow(addr.String, pw.String, webPW.String, ha1.String, seed.String)
		if err == nil && seen[a.Address] {
			err = errors.New("the address is in the table twice (differing in case or spaces)")
		}
		if err != nil {
			log.Warn("accounts table: row skipped", "address", addr.String, "err", err)
			continue
		}
		seen[a.Address] = true
		out = append(out, a)
	}
	return out, rows.Err()
}

// accountFromRow builds and validates the account of one row: the seed's
// keys are those of accounts.toml, checked by the same parser.
func accountFromRow(addr, pw, webPW, ha1, seed string) (Account, error) {
	m := map[string]any{}
	if strings.TrimSpace(seed) != "" {
		dec := json.NewDecoder(strings.NewReader(seed))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			return Account{}, fmt.Errorf("seed is not a JSON object: %w", err)
		}
		if dec.More() {
			return Account{}, errors.New("seed: data after the JSON object")
		}
		if m == nil {
			m = map[string]any{}
		}
		for _, k := range []string{"address", "password", "web_password", "ha1"} {
			if _, ok := m[k]; ok {
				return Account{}, fmt.Errorf("seed sets %q, which is a column of the table", k)
			}
		}
	}
	v, err := jsonToTOML(m)
	if err != nil {
		return Account{}, fmt.Errorf("seed: %w", err)
	}
	m = v.(map[string]any)
	m["address"] = addr
	m["password"] = pw
	if webPW != "" {
		m["web_password"] = webPW
	}
	if ha1 != "" {
		m["ha1"] = ha1
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(map[string]any{"account": []map[string]any{m}}); err != nil {
		return Account{}, fmt.Errorf("seed: %w", err)
	}
	accts, err := ParseAccounts(buf.Bytes())
	if err != nil {
		return Account{}, errors.New(strings.TrimPrefix(err.Error(), "account #1 ("+strings.ToLower(strings.TrimSpace(addr))+"): "))
	}
	return accts[0], nil
}

// jsonToTOML turns decoded JSON into values the TOML encoder writes as
// accounts.toml would have them: integers as integers, other numbers as
// floats; null is an error (TOML has none).
func jsonToTOML(v any) (any, error) {
	switch v := v.(type) {
	case nil:
		return nil, errors.New("null is not allowed: leave the key out")
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i, nil
		}
		f, err := v.Float64()
		if err != nil {
			return nil, err
		}
		return f, nil
	case map[string]any:
		for k, x := range v {
			y, err := jsonToTOML(x)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			v[k] = y
		}
		return v, nil
	case []any:
		for i, x := range v {
			y, err := jsonToTOML(x)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			v[i] = y
		}
		return v, nil
	default:
		return v, nil
	}
}

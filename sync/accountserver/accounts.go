package accountserver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // accounts name IANA zones; do not depend on the host's tzdata

	"github.com/BurntSushi/toml"
)

// Account is one SIP account served by the server, with the seed data its
// read actions return. Fields mirror the keys of accounts.toml. Pointer
// fields are nil when the file does not set them; the server then replies
// with a default (see the field comments), or null where the real server
// has no value either.
type Account struct {
	// Address is the SIP address user@domain. It is stored lower case,
	// the way NGNPro stores accounts.
	Address string `toml:"address"`
	// Password is the clear-text SIP password. Digest HA1 is then
	// md5(<username as sent>:<realm>:<password>), as the real server does.
	Password string `toml:"password"`
	// WebPassword, when set, is the only accepted secret, and only with the
	// bare lower-case user and the lower-case domain as realm (PROTOCOL §2.2).
	WebPassword string `toml:"web_password"`
	// HA1 is a stored md5(user:domain:password) in hex, used when there is
	// no web password.
	HA1 string `toml:"ha1"`

	Email           *string `toml:"email"`             // default: the address
	First           *string `toml:"first"`             // default: the local part, capitalised
	Lastname        *string `toml:"lastname"`          // default: null
	PSTNCallerID    *string `toml:"pstn_caller_id"`    // default: null
	MobileNumber    *string `toml:"mobile_number"`     // default: null
	Timezone        string  `toml:"timezone"`          // default: Europe/Amsterdam
	NoAnswerTimeout *int    `toml:"no_answer_timeout"` // default 35, capped at 900
	QuickDial       *string `toml:"quick_dial"`        // default: null

	// Aliases are alias addresses; a bare name gets "@<domain>".
	Aliases []string `toml:"aliases"`
	// Enum lists ENUM numbers ("+31...") mapped to the account.
	Enum           []string          `toml:"enum"`
	History        History           `toml:"history"`
	Devices        []Device          `toml:"devices"`
	Balance        float64           `toml:"balance"` // prepaid balance
	BalanceHistory []BalanceEntry    `toml:"balance_history"`
	Forwarding     map[string]string `toml:"forwarding"` // FUNC FNOL FBUS FNOA FUNV → target
	AcceptRules    AcceptRules       `toml:"accept_rules"`
	RejectRules    []string          `toml:"reject_rules"` // sip: URIs
	Voicemail      *Voicemail        `toml:"voicemail"`    // nil: get_voicemail replies null
	Privacy        bool              `toml:"privacy"`      // caller id hidden
}

// History is the seed for get_history.
type History struct {
	Placed   []Call `toml:"placed"`
	Received []Call `toml:"received"`
}

// Call is one completed call. StartTime is "YYYY-MM-DD HH:MM:SS" in the
// account's time zone; StopTime defaults to StartTime + Duration.
type Call struct {
	RemoteParty string   `toml:"remote_party"`
	DisplayName string   `toml:"display_name"`
	StartTime   string   `toml:"start_time"`
	StopTime    string   `toml:"stop_time"`
	Duration    int      `toml:"duration"` // seconds
	Status      int      `toml:"status"`   // SIP code, default 200
	Price       float64  `toml:"price"`    // placed calls only
	SessionID   string   `toml:"session_id"`
	FromTag     string   `toml:"from_tag"`
	ToTag       string   `toml:"to_tag"`
	ProxyIP     string   `toml:"proxy_ip"`
	Media       []string `toml:"media"` // default ["audio"]
}

// Device is one registered contact (get_devices).
type Device struct {
	Contact       string `toml:"contact"`
	PublicContact string `toml:"public_contact"`
	Expires       int    `toml:"expires"`
	UserAgent     string `toml:"user_agent"`
	Transport     string `toml:"transport"`
}

// BalanceEntry is one prepaid credit history entry (get_balance_history).
type BalanceEntry struct {
	Date        string  `toml:"date"`
	Action      string  `toml:"action"`
	Description string  `toml:"description"`
	Value       float64 `toml:"value"`
	Balance     float64 `toml:"balance"`
}

// AcceptRules is the seed for get_accept_rules.
type AcceptRules struct {
	Persistent []AcceptRule   `toml:"persistent"`
	Temporary  *TemporaryRule `toml:"temporary"` // default: everybody, duration 0
	Groups     []string       `toml:"groups"`
}

// AcceptRule is a persistent rule; Days is the weekday bit mask (1 Mon …
// 64 Sun, 31 weekdays, 96 weekend, 127 every day).
type AcceptRule struct {
	Days   int      `toml:"days"`
	Start  string   `toml:"start"`
	Stop   string   `toml:"stop"`
	Groups []string `toml:"groups"`
}

// TemporaryRule is the temporary accept rule that set_dnd_on/off write.
type TemporaryRule struct {
	Groups   []string `toml:"groups" json:"groups"`
	Duration int      `toml:"duration" json:"duration"`
}

// Voicemail is the mailbox get_voicemail returns. Server is the voicemail
// server used in the "Account" field (default "vm.<domain>").
type Voicemail struct {
	Mailbox  string           `toml:"mailbox"`
	Password string           `toml:"password"`
	Name     string           `toml:"name"`
	Email    string           `toml:"email"`
	Info     string           `toml:"info"`
	Options  VoicemailOptions `toml:"options"` // nil: {"delete":false}
	Server   string           `toml:"server"`
}

// VoicemailOptions are the mailbox options. The real server's Options is
// a structure, replied as a JSON object such as {"delete":false}
// (PROTOCOL §12); in accounts.toml it is a table with the same keys,
// e.g. options = { delete = false }.
type VoicemailOptions map[string]any

// UnmarshalTOML accepts only a table, so the old string form gets a clear
// error.
func (o *VoicemailOptions) UnmarshalTOML(v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("voicemail options is a %T; want a table, e.g. options = { delete = false }", v)
	}
	*o = m
	return nil
}

// forwardingKeys are the diversion conditions in the order the real server
// returns them.
var forwardingKeys = []string{"FUNC", "FNOL", "FBUS", "FNOA", "FUNV"}

type accountsFile struct {
	Account []Account `toml:"account"`
}

// LoadAccounts reads and validates an accounts.toml file. Unknown keys,
// wrong types and bad values are errors that name the key and its line.
func LoadAccounts(path string) ([]Account, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	accts, err := ParseAccounts(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return accts, nil
}

// ParseAccounts is LoadAccounts for a file already in memory.
func ParseAccounts(data []byte) ([]Account, error) {
	var f accountsFile
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&f)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("line %d: %s", pe.Position.Line, pe.Message)
		}
		return nil, err
	}
	if und := md.Undecoded(); len(und) > 0 {
		k := und[0]
		return nil, fmt.Errorf("line %d: unknown key %q", keyLine(data, k), k.String())
	}
	if len(f.Account) == 0 {
		return nil, errors.New("no [[account]] defined; add one with address and password")
	}
	seen := map[string]bool{}
	for i := range f.Account {
		a := &f.Account[i]
		if err := a.normalize(); err != nil {
			return nil, fmt.Errorf("account #%d (%s): %w", i+1, a.Address, err)
		}
		if seen[a.Address] {
			return nil, fmt.Errorf("account %s is listed twice", a.Address)
		}
		seen[a.Address] = true
	}
	return f.Account, nil
}

// keyLine finds the line on which the last part of key is defined, for
// error messages; 0 if not found.
func keyLine(data []byte, key toml.Key) int {
	last := key[len(key)-1]
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, len(data)+1)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		name, _, ok := strings.Cut(line, "=")
		if ok && strings.Trim(strings.TrimSpace(name), `"'`) == last {
			return n
		}
		if strings.HasPrefix(line, "[") {
			h := strings.Trim(line, "[] ")
			if h == key.String() || strings.HasSuffix(h, "."+last) {
				return n
			}
		}
	}
	return 0
}

func (a *Account) normalize() error {
	a.Address = strings.ToLower(strings.TrimSpace(a.Address))
	user, domain, ok := strings.Cut(a.Address, "@")
	if !ok || user == "" || domain == "" || strings.Contains(domain, "@") {
		return errors.New(`address must be "user@domain"`)
	}
	if a.Password == "" && a.WebPassword == "" && a.HA1 == "" {
		return errors.New("set password (or web_password or ha1)")
	}
	if a.HA1 != "" {
		a.HA1 = strings.ToLower(a.HA1)
		if len(a.HA1) != 32 || strings.Trim(a.HA1, "0123456789abcdef") != "" {
			return errors.New("ha1 must be 32 hex digits (md5 of user:domain:password)")
		}
	}
	if a.Timezone == "" {
		a.Timezone = "Europe/Amsterdam"
	}
	if _, err := time.LoadLocation(a.Timezone); err != nil {
		return fmt.Errorf("timezone %q: %v", a.Timezone, err)
	}
	for k := range a.Forwarding {
		if !slices.Contains(forwardingKeys, k) {
			return fmt.Errorf("forwarding key %q: use one of %s", k, strings.Join(forwardingKeys, " "))
		}
	}
	for i, al := range a.Aliases {
		al = strings.ToLower(strings.TrimSpace(al))
		if !strings.Contains(al, "@") {
			al += "@" + domain
		}
		a.Aliases[i] = al
	}
	for _, c := range append(slices.Clone(a.History.Placed), a.History.Received...) {
		if _, err := time.Parse(timeLayout, c.StartTime); err != nil {
			return fmt.Errorf("history start_time %q: want YYYY-MM-DD HH:MM:SS", c.StartTime)
		}
		if c.StopTime != "" {
			if _, err := time.Parse(timeLayout, c.StopTime); err != nil {
				return fmt.Errorf("history stop_time %q: want YYYY-MM-DD HH:MM:SS", c.StopTime)
			}
		}
	}
	for _, r := range a.AcceptRules.Persistent {
		if r.Days < 1 || r.Days > 127 {
			return fmt.Errorf("accept_rules.persistent days %d: want a bit mask 1..127", r.Days)
		}
	}
	return nil
}

// user and domain split the address.
func (a *Account) user() string   { u, _, _ := strings.Cut(a.Address, "@"); return u }
func (a *Account) domain() string { _, d, _ := strings.Cut(a.Address, "@"); return d }

// timeLayout is the MySQL DATETIME layout used for journal timestamps and
// call times.
const timeLayout = "2006-01-02 15:04:05"

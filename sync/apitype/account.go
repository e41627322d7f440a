package apitype

import (
	"encoding/json"
	"time"
)

// The replies of the account API routes, GET or POST /v1/account/{action}.
// They are the SIP Account API's replies with its quirks removed: ids are
// numbers, absent values are "" (or omitted), keys are snake_case.
// sync/account returns these very types (its Identity, Call, … are
// aliases), so the daemon serves exactly these shapes.

// Identity is the reply of get_identity.
type Identity struct {
	SIPAddress      string `json:"sip_address"`
	Email           string `json:"email"`
	FirstName       string `json:"first_name"`
	LastName        string `json:"last_name"`
	PSTNCallerID    string `json:"pstn_caller_id"`
	MobileNumber    string `json:"mobile_number"`
	Timezone        string `json:"timezone"`
	NoAnswerTimeout int    `json:"no_answer_timeout"` // seconds
	QuickDial       string `json:"quick_dial"`
}

// Call is one completed call of get_history.
type Call struct {
	RemoteParty string   `json:"remote_party"`
	DisplayName string   `json:"display_name"`
	StartTime   string   `json:"start_time"` // "2006-01-02 15:04:05" in Timezone
	StopTime    string   `json:"stop_time"`
	Timezone    string   `json:"timezone"`
	Duration    int64    `json:"duration"` // seconds
	Status      int      `json:"status"`   // SIP status code
	Price       string   `json:"price,omitempty"`
	SessionID   string   `json:"session_id"`
	FromTag     string   `json:"from_tag"`
	ToTag       string   `json:"to_tag"`
	ProxyIP     string   `json:"proxy_ip"`
	Media       []string `json:"media"`
}

// History is the reply of get_history.
type History struct {
	Placed   []Call `json:"placed"`
	Received []Call `json:"received"`
}

// Device is one registered device of get_devices.
type Device struct {
	Contact       string `json:"contact"`        // ip:port
	PublicContact string `json:"public_contact"` // ip:port as seen by the server
	Expires       string `json:"expires"`        // as the server wrote it
	UserAgent     string `json:"user_agent"`
	Transport     string `json:"transport"`
}

// Prepaid is the reply of get_prepaid. Raw is the server's object as is.
type Prepaid struct {
	Balance string          `json:"balance"` // as the server wrote it, e.g. "12.5"
	Raw     json.RawMessage `json:"raw"`
}

// BalanceEntry is one row of get_balance_history.
type BalanceEntry struct {
	Date        string          `json:"date"`
	Action      string          `json:"action"`
	Description string          `json:"description"`
	Value       string          `json:"value"`
	Balance     string          `json:"balance"`
	Raw         json.RawMessage `json:"raw"`
}

// MonthlyUsage is the reply of get_monthly_usage.
type MonthlyUsage struct {
	Calls int64  `json:"calls"`
	Price string `json:"price"` // as the server wrote it
}

// Forwarding is the reply of get_call_forwarding: condition (FUNC FNOL
// FBUS FNOA FUNV) → target. Unset conditions are absent.
type Forwarding map[string]string

// AcceptRule is one persistent accept rule.
type AcceptRule struct {
	Start  string   `json:"start"`
	Stop   string   `json:"stop"`
	Groups []string `json:"groups"`
}

// TemporaryRule is the rule do-not-disturb sets: Groups ["nobody"] for
// Duration minutes (0: until switched off).
type TemporaryRule struct {
	Groups   []string `json:"groups"`
	Duration int64    `json:"duration"` // minutes
}

// AcceptRules is the reply of get_accept_rules. Persistent is keyed by a
// days bitmask (1 Monday … 64 Sunday, 31 weekdays, 96 weekend, 127 every
// day), written as a decimal string.
type AcceptRules struct {
	Persistent map[int]AcceptRule `json:"persistent,omitempty"`
	Temporary  *TemporaryRule     `json:"temporary,omitempty"`
	Groups     []string           `json:"groups"`
}

// Voicemail is the reply of get_voicemail (null when there is no mailbox).
type Voicemail struct {
	Mailbox  string `json:"mailbox"`
	Password string `json:"password"`
	Name     string `json:"name"`
	Email    string `json:"email"`
	Info     string `json:"info"`
	// Options is the server's Options value as JSON: on the real server
	// an object such as {"delete":false}, on old servers a string;
	// absent when the server sent null or nothing.
	Options json.RawMessage `json:"options,omitempty"`
	Account string          `json:"account"` // mailbox@voicemail-server
}

// JournalPage is the reply of get_journal_entries.
type JournalPage struct {
	Entries []JournalEntry `json:"entries"`
	Rows    int            `json:"rows"`
}

// JournalEntry is one raw journal row. With ?decrypt=1 the daemon opens
// Data with this device's keys: Plain holds the result, or DecryptError
// says why it could not.
type JournalEntry struct {
	ID           int64         `json:"id"`
	Source       string        `json:"source"`
	Timestamp    string        `json:"timestamp"`
	Account      string        `json:"account"`
	UUID         string        `json:"uuid"`
	IPAddress    string        `json:"ip_address"`
	Data         string        `json:"data"`
	Plain        *JournalPlain `json:"plain,omitempty"`
	DecryptError string        `json:"decrypt_error,omitempty"`
}

// JournalPlain is the decrypted content of a journal entry.
type JournalPlain struct {
	Op      string          `json:"op"` // "put" or "delete"
	MsgID   string          `json:"msgid"`
	Account string          `json:"account"`
	Device  string          `json:"device"`
	Time    time.Time       `json:"time"`
	Message json.RawMessage `json:"message,omitempty"`
}

// Account API actions served under /v1/account/{action}: the seed's
// actions except the journal writes, which belong to the daemon.
var (
	// ReadActions are served for GET.
	ReadActions = []string{
		"get_identity", "get_aliases", "get_enum", "get_history", "get_devices",
		"get_prepaid", "get_balance_history", "get_monthly_usage", "get_call_forwarding",
		"get_accept_rules", "get_reject_rules", "get_voicemail", "get_journal_entries",
	}
	// WriteActions are served for POST.
	WriteActions = []string{
		"add_alias", "set_call_forwarding", "set_dnd_on", "set_dnd_off",
		"set_privacy_on", "set_privacy_off",
	}
)

package engine

// Every device makes itself known to the other devices of the account with
// a report, sealed like a message (an entry with op "report"): its name,
// version, key ids, how far it has applied the journal and how many
// messages its store holds. Every message entry it writes also says how far
// it had applied the journal (Entry.Applied), so a device that writes needs
// no report to be seen up to date. A report costs one row; it is sent
// after the first catch-up, then only when something it says changed and
// the last one is ReportInterval old, and when a device asks for fresh
// reports (`chatsync devices --refresh`): then every other device answers
// once, at its next poll. Other devices keep reports in their state, never
// in the store.
//
// From the reports and the rows, each device tells how many of its own
// versions (messages whose newest version it wrote) another device had not
// applied when it last said how far it had: that is `chatsync devices`.

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/store"
	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/apitype"
)

// ReportInterval is the least time between two reports of a device while
// what it says changes (a fresh report asked for excepted).
const ReportInterval = time.Hour

// reportCheckEvery is how often an unchanged report is looked at again.
const reportCheckEvery = 10 * time.Minute

// askFresh is how old an ask for reports may be and still be answered: a
// device that starts and reads one from last week does not answer it.
const askFresh = 10 * time.Minute

// reportRetry is how soon a report that could not be sent is tried again.
const reportRetry = time.Minute

// report is the content of a report entry.
type report struct {
	Name     string   `json:"name"`
	Version  string   `json:"version"`
	KeyIDs   []string `json:"key_ids"`
	Applied  int64    `json:"applied"`
	Messages int      `json:"messages"`
	// Unapplied counts the rows it keeps, unable to apply them yet.
	Unapplied int `json:"unapplied,omitempty"`
	// Ask asks every other device for a fresh report.
	Ask bool `json:"ask,omitempty"`
}

// reporter is the state of this device's reports; it belongs to the Run
// goroutine, but for refresh.
type reporter struct {
	nextCheck time.Time // when the hourly rule is looked at again
	retryAt   time.Time // after a report that could not be sent
	answer    bool      // another device asked since this one's last report
	lastAt    time.Time // when this device's last report was made
	// refresh is set by RefreshDevices (any goroutine).
	refresh atomic.Bool
}

// RefreshDevices makes this device send its report now and ask the other
// devices for theirs; they answer at their next poll.
func (e *Engine) RefreshDevices() {
	e.rep.refresh.Store(true)
	e.wake()
}

// reportStep sends this device's report when one is due. It reports
// whether it sent one. A report waits for the catch-up and for the outbox
// to be sent, so that what it says is what the journal shows.
func (e *Engine) reportStep(ctx context.Context) bool {
	acct := e.opts.Account
	now := e.opts.Now()
	refresh := e.rep.refresh.Load()
	switch {
	case e.opts.NoReports, !e.caughtUp, e.putting != nil, e.needCheck, e.deciding != nil,
		now.Before(e.rep.retryAt), now.Before(e.pushRetry.until),
		!refresh && !e.rep.answer && now.Before(e.rep.nextCheck):
		return false
	}
	st, err := e.db.Stats(acct)
	if err != nil || st.OutboxDepth > len(e.held) {
		return false
	}
	last, sent, err := e.db.SentReport(acct)
	if err != nil {
		return false
	}
	e.rep.lastAt = last.At
	r, err := e.currentReport(st.Cursor)
	if err != nil {
		e.log.Debug("cannot make this device's report", "err", err)
		e.rep.retryAt = now.Add(reportRetry)
		return false
	}
	body, _ := json.Marshal(r)
	changed := !sent || !bytes.Equal(body, last.Report)
	if !refresh && !e.rep.answer && sent && (!changed || now.Sub(last.At) < ReportInterval) {
		e.rep.nextCheck = now.Add(reportCheckEvery)
		if changed {
			e.rep.nextCheck = last.At.Add(ReportInterval)
		}
		return false
	}
	rec := store.SentReport{At: now, Report: body, Applied: st.Cursor}
	if refresh {
		r.Ask = true
		body, _ = json.Marshal(r)
		rec.Asked = now
	}
	env, err := e.opts.Keyring.Seal(seal.Entry{Op: seal.OpReport, Account: acct, Device: e.device, Time: now, Message: body, Applied: st.Cursor})
	if err == nil {
		// Recorded first: a row whose reply is lost is still known as
		// this device's own (the clone check).
		err = e.db.RecordReport(acct, rec)
	}
	if err != nil {
		e.log.Warn("cannot record this device's report", "err", err)
		e.rep.retryAt = now.Add(reportRetry)
		return false
	}
	e.rep.refresh.Store(false)
	res, err := e.opts.Remote.PutJournalEntries(ctx, e.device, []account.PutEntry{{ID: reportToken(), Data: env}})
	if err == nil && (len(res) != 1 || !res[0].Stored) {
		err = fmt.Errorf("the server did not store it")
	}
	if err != nil {
		if ctx.Err() == nil {
			e.log.Info("cannot send this device's report; trying again in a minute", "err", err)
		}
		if refresh {
			e.rep.refresh.Store(true)
		}
		e.rep.retryAt = now.Add(reportRetry)
		return false
	}
	if err := e.db.ReportStored(acct, now, res[0].JournalID); err != nil {
		e.log.Warn("cannot record this device's report", "err", err)
	}
	e.rep.answer, e.rep.lastAt = false, now
	e.rep.nextCheck = now.Add(ReportInterval)
	e.log.Info("sent this device's report to the other devices", "applied", r.Applied, "messages", r.Messages, "asks_for_theirs", r.Ask)
	return true
}

// currentReport is what this device would report now.
func (e *Engine) currentReport(cursor int64) (report, error) {
	n, err := e.db.MessageCount(e.opts.Account)
	if err != nil {
		return report{}, err
	}
	e.mu.Lock()
	unapplied := e.status.Unapplied
	e.mu.Unlock()
	return report{
		Name: e.deviceName(), Version: e.opts.Version, KeyIDs: keyIDs(e.opts.Keyring),
		Applied: cursor, Messages: n, Unapplied: unapplied,
	}, nil
}

func (e *Engine) deviceName() string {
	if e.opts.DeviceName != "" {
		return e.opts.DeviceName
	}
	h, _ := os.Hostname()
	return cmp.Or(h, "unnamed")
}

func keyIDs(kr *seal.Keyring) []string {
	var ids []string
	for _, k := range kr.Keys() {
		ids = append(ids, k.ID())
	}
	slices.Sort(ids)
	return ids
}

// reportToken is the put's entry id of a report: random, like a
// message's, so it says nothing.
func reportToken() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// notePeer takes what an opened (or unopenable) row says of the device
// that wrote it into the page's peers; it reports whether the row is a
// report, which is not a message.
func (e *Engine) notePeer(pg *pagePlan, row account.JournalEntry, en seal.Entry, openErr error) (isReport bool) {
	device, at := en.Device, en.Time
	if openErr != nil {
		device = row.UUID
		at, _ = time.Parse(time.DateTime, row.Timestamp) // the server's clock, UTC or not: a row that cannot be opened says nothing better
	}
	if device == "" || e.ownDevice(device) {
		return openErr == nil && en.Op == seal.OpReport
	}
	key := strings.ToLower(device)
	if pg.peers == nil {
		pg.peers = map[string]*store.Peer{}
	}
	p := pg.peers[key]
	if p == nil {
		p = &store.Peer{Device: key}
		pg.peers[key] = p
	}
	if row.ID > e.seenMax {
		p.Rows++
	}
	p.LastRow = max(p.LastRow, row.ID)
	if at.After(p.LastSeen) {
		p.LastSeen = at
	}
	if k := envelopeKeyID(row.Data); k != "" && !slices.Contains(p.SealedKeys, k) {
		p.SealedKeys = append(p.SealedKeys, k)
	}
	if openErr != nil {
		return false
	}
	if en.Applied > 0 && en.Time.After(p.AppliedAt) {
		p.Applied, p.AppliedAt = en.Applied, en.Time
	}
	if en.Op != seal.OpReport {
		return false
	}
	var r report
	if json.Unmarshal(en.Message, &r) != nil {
		e.skip(row.ID, fmt.Errorf("%w: the report inside is not valid", seal.ErrBadEntry))
		return true
	}
	if en.Time.After(p.Reported) {
		p.Report, p.Reported = en.Message, en.Time
	}
	if en.Time.After(p.AppliedAt) || en.Time.Equal(p.AppliedAt) {
		// A report says how far it applied even when that is nothing
		// yet (a first report beside an empty journal); a message row
		// says it only when its applied is set.
		p.Applied, p.AppliedAt = r.Applied, en.Time
	}
	if r.Ask && en.Time.After(e.rep.lastAt) && e.opts.Now().Sub(en.Time) < askFresh {
		e.rep.answer = true // answered once caught up, after this page
	}
	return true
}

// ownLag is store.OwnLag, remembered: it reads every version this device
// holds, and what it counts changes only when the versions do — when this
// device stores a row (the highwater rises) or applies one (the cursor
// moves) — or when what is asked changes. A scrape of the metrics every
// few seconds costs a look at the cache.
func (e *Engine) ownLag(st store.Stats, of []store.LagOf) ([]store.Lag, error) {
	key := fmt.Sprint(st.Highwater, st.Cursor, of)
	e.lagMu.Lock()
	if e.lagKey == key {
		defer e.lagMu.Unlock()
		return slices.Clone(e.lagCache), nil
	}
	e.lagMu.Unlock()
	lags, err := e.db.OwnLag(e.opts.Account, of)
	if err != nil {
		return nil, err
	}
	e.lagMu.Lock()
	e.lagKey, e.lagCache = key, slices.Clone(lags)
	e.lagMu.Unlock()
	return lags, nil
}

// pagePeers lists the page's peers for the state.
func (pg *pagePlan) pagePeers() []store.Peer {
	var out []store.Peer
	for _, p := range pg.peers {
		out = append(out, *p)
	}
	return out
}

// Devices returns every chatsync device of the account seen in the
// journal, this one first, with how many of this device's versions each
// had not applied when it last said how far it had.
func (e *Engine) Devices() (apitype.Devices, error) {
	acct := e.opts.Account
	peers, err := e.db.Peers(acct)
	if err != nil {
		return apitype.Devices{}, err
	}
	st, err := e.db.Stats(acct)
	if err != nil {
		return apitype.Devices{}, err
	}
	last, _, err := e.db.SentReport(acct)
	if err != nil {
		return apitype.Devices{}, err
	}
	n, err := e.db.MessageCount(acct)
	if err != nil {
		return apitype.Devices{}, err
	}
	// Called from outside the Run goroutine: the device ids come from the
	// status and the state, not from the loop's fields.
	e.mu.Lock()
	device := e.status.DeviceID
	e.mu.Unlock()
	former, err := e.db.FormerDevices(acct)
	if err != nil {
		return apitype.Devices{}, err
	}
	own := func(id string) bool {
		return strings.EqualFold(id, device) || slices.ContainsFunc(former, func(f string) bool { return strings.EqualFold(id, f) })
	}
	self := apitype.SyncDevice{
		DeviceID: device, Name: e.deviceName(), Version: e.opts.Version, KeyIDs: keyIDs(e.opts.Keyring),
		LastSeen: e.opts.Now(), Self: true, Applied: st.Cursor, AppliedAt: e.opts.Now(),
		Reported: last.At, Messages: n,
	}
	out := apitype.Devices{Account: acct, Devices: []apitype.SyncDevice{self}, Refreshed: last.Asked}
	mine := map[string]bool{}
	for _, k := range self.KeyIDs {
		mine[k] = true
	}
	var of []store.LagOf
	var known []int // indexes into out.Devices of the devices with a lag to count
	for _, p := range peers {
		if own(p.Device) {
			continue
		}
		d := apitype.SyncDevice{
			DeviceID: p.Device, LastSeen: p.LastSeen, Behind: -1, Applied: p.Applied, AppliedAt: p.AppliedAt,
			Reported: p.Reported, Messages: -1, Rows: p.Rows, KeyIDs: p.SealedKeys,
		}
		var r report
		var keys []string
		if p.Report != nil && json.Unmarshal(p.Report, &r) == nil {
			d.Name, d.Version, d.Messages, d.KeyIDs = r.Name, r.Version, r.Messages, r.KeyIDs
			keys = r.KeyIDs
			if keys == nil {
				keys = []string{}
			}
		}
		if p.Reported.After(d.LastSeen) {
			d.LastSeen = p.Reported
		}
		for _, k := range p.SealedKeys {
			if !mine[k] {
				d.MissingKeys = append(d.MissingKeys, k)
			}
		}
		if d.KeyIDs == nil {
			d.KeyIDs = []string{}
		}
		out.Devices = append(out.Devices, d)
		if !p.AppliedAt.IsZero() {
			of = append(of, store.LagOf{Applied: p.Applied, Said: p.AppliedAt, KeyIDs: keys})
			known = append(known, len(out.Devices)-1)
		}
	}
	lags, err := e.ownLag(st, of)
	if err != nil {
		return apitype.Devices{}, err
	}
	for i, l := range lags {
		d := &out.Devices[known[i]]
		d.Behind, d.BehindSince, d.Unconfirmed = l.Behind, l.Since, l.Unconfirmed
	}
	slices.SortStableFunc(out.Devices[1:], func(a, b apitype.SyncDevice) int { return b.LastSeen.Compare(a.LastSeen) })
	return out, nil
}

// Package localclient talks to a running chatsync daemon through its
// control socket (the /v1/ API of sync/localapi). Local programs import it
// to read the daemon's status, ask for a sync, follow its events, list the
// account's chatsync devices, verify the store against the journal, read
// the metrics and call the SIP Account API with the daemon's credentials.
//
// It depends only on the standard library and sync/apitype: importing it
// does not link chatsync's store, crypto or file watcher.
//
//	c := &localclient.Client{Socket: "/run/user/1000/chatsync.sock"}
//	st, err := c.Status(ctx)
package localclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chatsync/chatsync/sync/apitype"
)

// Client is a client of the control socket. Its zero value is not usable:
// set Socket (or Dial). It is safe for concurrent use.
type Client struct {
	// Socket is the path of the daemon's control socket.
	Socket string
	// AccountAddress, if set, is sent as ?account= with every call (needed
	// when the daemon has several accounts).
	AccountAddress string
	// Dial, if set, replaces dialing Socket (tests).
	Dial func(ctx context.Context) (net.Conn, error)

	once sync.Once
	hc   *http.Client
}

// NotRunningError is returned when the socket cannot be reached. Its
// message says which of the usual causes it is: no socket at that path
// (the daemon may be running with another one), a socket this user may
// not open, or a socket nothing answers on (the daemon is not running).
// Test the cause with errors.Is(err, fs.ErrNotExist), fs.ErrPermission or
// syscall.ECONNREFUSED.
type NotRunningError struct {
	Socket string
	Err    error
}

func (e *NotRunningError) Error() string {
	switch {
	case errors.Is(e.Err, fs.ErrNotExist):
		return fmt.Sprintf("no chatsync control socket at %s: %v", e.Socket, e.Err)
	case errors.Is(e.Err, fs.ErrPermission):
		return fmt.Sprintf("permission denied on the chatsync control socket %s: %v", e.Socket, e.Err)
	case errors.Is(e.Err, syscall.ECONNREFUSED):
		return fmt.Sprintf("chatsync is not running (nothing answers on %s): %v", e.Socket, e.Err)
	}
	return fmt.Sprintf("cannot reach the chatsync control socket %s: %v", e.Socket, e.Err)
}

func (e *NotRunningError) Unwrap() error { return e.Err }

// APIError is an error reply of the daemon.
type APIError struct {
	// StatusCode is the reply's HTTP status; 0 for an error that ended a
	// streamed reply after it had begun (a verify with progress).
	StatusCode int
	Message    string
	// Kind classifies SIP Account API failures ("auth", "server", ...).
	Kind string
}

func (e *APIError) Error() string { return e.Message }

// AccessDenied reports whether the daemon refused this caller (403).
func (e *APIError) AccessDenied() bool { return e.StatusCode == http.StatusForbidden }

func (c *Client) client() *http.Client {
	c.once.Do(func() {
		dial := c.Dial
		if dial == nil {
			dial = func(ctx context.Context) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", c.Socket)
			}
		}
		c.hc = &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				conn, err := dial(ctx)
				if err != nil {
					return nil, &NotRunningError{Socket: c.Socket, Err: err}
				}
				return conn, nil
			},
			DisableCompression: true,
		}}
	})
	return c.hc
}

// do sends a request and returns the reply, whose status is 2xx.
func (c *Client) do(ctx context.Context, method, path string, q url.Values) (*http.Response, error) {
	var body io.Reader
	u := "http://local.chatsync.sock" + path
	if method == http.MethodPost {
		body = strings.NewReader(q.Encode())
	} else if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.client().Do(req)
	if err != nil {
		if nr, ok := errors.AsType[*NotRunningError](err); ok {
			return nil, nr
		}
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var e apitype.Error
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(data))
		}
		return nil, &APIError{StatusCode: resp.StatusCode, Message: e.Error, Kind: e.Kind}
	}
	return resp, nil
}

func (c *Client) call(ctx context.Context, method, path string, q url.Values, out any) error {
	resp, err := c.do(ctx, method, path, q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: bad reply from the daemon: %w", method, path, err)
	}
	return nil
}

func (c *Client) accountQuery() url.Values {
	q := url.Values{}
	if c.AccountAddress != "" {
		q.Set("account", c.AccountAddress)
	}
	return q
}

// Status returns the daemon's status (all accounts, or c.AccountAddress).
func (c *Client) Status(ctx context.Context) (*apitype.Status, error) {
	var st apitype.Status
	if err := c.call(ctx, http.MethodGet, "/v1/status", c.accountQuery(), &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// SyncNow asks the daemon to push and poll now. It returns at once with
// the time of the request; an account is caught up with it when
// apitype.AccountStatus.CaughtUp(res.Requested) holds.
func (c *Client) SyncNow(ctx context.Context) (*apitype.SyncResult, error) {
	var res apitype.SyncResult
	if err := c.call(ctx, http.MethodPost, "/v1/sync", c.accountQuery(), &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// SyncWait asks the daemon to push and poll now and returns once every
// account (or c.AccountAddress) is caught up, with their status, or when ctx ends.
func (c *Client) SyncWait(ctx context.Context) (*apitype.SyncResult, error) {
	q := c.accountQuery()
	q.Set("wait", "1")
	if dl, ok := ctx.Deadline(); ok {
		q.Set("timeout", fmt.Sprint(max(1, int(time.Until(dl).Seconds())))+"s")
	}
	var res apitype.SyncResult
	if err := c.call(ctx, http.MethodPost, "/v1/sync", q, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Events follows the daemon's event stream until ctx ends or the daemon
// stops. Call Next until it returns false, then Err; Close releases it.
func (c *Client) Events(ctx context.Context) (*EventStream, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/events", c.accountQuery())
	if err != nil {
		return nil, err
	}
	return &EventStream{body: resp.Body, sc: bufio.NewScanner(resp.Body)}, nil
}

// EventStream is a stream of daemon events.
type EventStream struct {
	body io.ReadCloser
	sc   *bufio.Scanner
	ev   apitype.Event
	err  error
}

// Next waits for the next event and reports whether there is one.
func (s *EventStream) Next() bool {
	for s.err == nil && s.sc.Scan() {
		line := bytes.TrimSpace(s.sc.Bytes())
		if len(line) == 0 {
			continue
		}
		s.ev = apitype.Event{}
		if err := json.Unmarshal(line, &s.ev); err != nil {
			s.err = fmt.Errorf("bad event from the daemon: %w", err)
			return false
		}
		return true
	}
	return false
}

// Event is the event Next found.
func (s *EventStream) Event() apitype.Event { return s.ev }

// Err is the error that ended the stream, nil when the daemon or the
// context ended it.
func (s *EventStream) Err() error {
	if s.err != nil {
		return s.err
	}
	if err := s.sc.Err(); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return err
	}
	return nil
}

// Close ends the stream.
func (s *EventStream) Close() error { return s.body.Close() }

// Account calls a SIP Account API action through the daemon (see
// apitype.ReadActions and apitype.WriteActions) and decodes its reply into
// out (the matching apitype type, or a json.RawMessage). Write actions are
// sent as POST, read actions as GET.
func (c *Client) Account(ctx context.Context, action string, params url.Values, out any) error {
	q := c.accountQuery()
	for k, v := range params {
		q[k] = v
	}
	method := http.MethodGet
	for _, a := range apitype.WriteActions {
		if a == action {
			method = http.MethodPost
		}
	}
	return c.call(ctx, method, "/v1/account/"+url.PathEscape(action), q, out)
}

// Devices is the reply of GET /v1/devices: the chatsync devices of every
// account asked for. It encodes to JSON as the daemon sent it: one object
// when the request named an account or the daemon has one, else an array.
type Devices struct {
	Accounts []apitype.Devices
	// Several is set when the daemon answered with an array.
	Several bool
}

// MarshalJSON writes d as the daemon sent it.
func (d Devices) MarshalJSON() ([]byte, error) {
	if d.Several || len(d.Accounts) != 1 {
		list := d.Accounts
		if list == nil {
			list = []apitype.Devices{}
		}
		return json.Marshal(list)
	}
	return json.Marshal(d.Accounts[0])
}

// Devices returns the chatsync devices of c.AccountAddress, or of every
// account: each device the journal shows, this one first, with how many
// of this device's messages it had not applied at its last report.
func (c *Client) Devices(ctx context.Context) (*Devices, error) {
	var raw json.RawMessage
	if err := c.call(ctx, http.MethodGet, "/v1/devices", c.accountQuery(), &raw); err != nil {
		return nil, err
	}
	var d Devices
	var err error
	if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '[' {
		d.Several = true
		err = json.Unmarshal(t, &d.Accounts)
	} else {
		var one apitype.Devices
		err = json.Unmarshal(t, &one)
		d.Accounts = []apitype.Devices{one}
	}
	if err != nil {
		return nil, fmt.Errorf("GET /v1/devices: bad reply from the daemon: %w", err)
	}
	return &d, nil
}

// RefreshDevices asks the other devices of c.AccountAddress (or of every
// account) for fresh reports. They answer at their next poll; a device
// whose SyncDevice.Reported is after the time returned has answered.
func (c *Client) RefreshDevices(ctx context.Context) (time.Time, error) {
	var res struct {
		Refreshed time.Time `json:"refreshed"`
	}
	if err := c.call(ctx, http.MethodPost, "/v1/devices/refresh", c.accountQuery(), &res); err != nil {
		return time.Time{}, err
	}
	return res.Refreshed, nil
}

// Verify compares the store of c.AccountAddress (needed when the daemon
// has several accounts) with the journal, and with repair fixes what
// differs. It reads the whole journal and may take minutes: give ctx a
// deadline that allows for it, or none. progress, if not nil, is called
// with each progress line the daemon sends.
func (c *Client) Verify(ctx context.Context, repair bool, progress func(apitype.VerifyProgress)) (*apitype.VerifyResult, error) {
	q := c.accountQuery()
	if repair {
		q.Set("repair", "1")
	}
	if progress == nil {
		var res apitype.VerifyResult
		if err := c.call(ctx, http.MethodPost, "/v1/verify", q, &res); err != nil {
			return nil, err
		}
		return &res, nil
	}
	q.Set("progress", "1")
	resp, err := c.do(ctx, http.MethodPost, "/v1/verify", q)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var line struct {
			Progress *apitype.VerifyProgress `json:"progress"`
			Result   *apitype.VerifyResult   `json:"result"`
			Error    string                  `json:"error"`
		}
		if err := dec.Decode(&line); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // the daemon stopped before the result
			}
			return nil, fmt.Errorf("POST /v1/verify: the reply ended without a result: %w", err)
		}
		switch {
		case line.Error != "":
			return nil, &APIError{Message: line.Error} // no status: the reply had begun
		case line.Result != nil:
			return line.Result, nil
		case line.Progress != nil:
			progress(*line.Progress)
		}
	}
}

// Metrics returns the daemon's metrics in the Prometheus text format.
func (c *Client) Metrics(ctx context.Context) ([]byte, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/metrics", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

package main_test

// End-to-end tests of replication on a server that behaves like the real
// CDRTool server (chatsync-server --strict-compat: a page over 20 MB fails
// with HTTP 500, no limit below 5000, same-second rows in any order), and
// on one that ignores after_id. The daemons reach the server through a
// loopback proxy that counts the bytes of every reply.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatsync/chatsync/sync/localclient"
)

// meter is a reverse proxy in front of chatsync-server that records the
// size of every get_journal_entries reply, by except_uuid.
type meter struct {
	mu      sync.Mutex
	replies []meterReply
	srv     *httptest.Server
}

type meterReply struct {
	except string
	bytes  int
	at     time.Time
}

func newMeter(t *testing.T, target string) *meter {
	t.Helper()
	m := &meter{}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out, err := http.NewRequestWithContext(r.Context(), r.Method, strings.TrimSuffix(target, "/settings.phtml")+r.URL.RequestURI(), r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		out.Header = r.Header.Clone()
		resp, err := http.DefaultTransport.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		n, _ := io.Copy(w, resp.Body)
		q := r.URL.Query()
		if q.Get("action") == "get_journal_entries" && r.Header.Get("Authorization") != "" {
			m.mu.Lock()
			m.replies = append(m.replies, meterReply{except: strings.ToLower(q.Get("except_uuid")), bytes: int(n), at: time.Now()})
			m.mu.Unlock()
		}
	}))
	t.Cleanup(m.srv.Close)
	return m
}

// polls returns the sizes of the polls of device (by its id) since t.
func (m *meter) polls(device string, t time.Time) []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int
	for _, r := range m.replies {
		if r.except == strings.ToLower(device) && r.at.After(t) {
			out = append(out, r.bytes)
		}
	}
	return out
}

func deviceID(t *testing.T, d *e2eDevice) string {
	t.Helper()
	var id string
	eventually(t, 20*time.Second, d.name+"'s device id", func() bool {
		c := &localclient.Client{Socket: filepath.Join(d.dir, "s.sock")}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if st, err := c.Status(ctx); err == nil {
			id = st.DeviceID
		}
		return id != ""
	}, d)
	return id
}

func picture(size int) string {
	raw := make([]byte, size*3/4)
	rand.Read(raw)
	return base64.StdEncoding.EncodeToString(raw)
}

// prose returns n bytes of ordinary English text, from a place that
// depends on i.
func prose(t *testing.T, i, n int) string {
	t.Helper()
	b, err := os.ReadFile("../../sync/engine/testdata/opticks.txt")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(string(b)), " ")
	start := (i * 997) % (len(text) - n)
	return text[start : start+n]
}

func chatMessage(t *testing.T, i, size int) map[string]any {
	m := e2eMsg(fmt.Sprintf("%08x-4b1c-4d2e-9f3a-%012x", i*7919, i), prose(t, i, max(size-300, 1)))
	m["remote_uri"] = fmt.Sprintf("friend%d@example.org", i%7)
	m["media_type"], m["content_type"], m["status"], m["private"] = "chat", "text/plain", "delivered", "0"
	m["time"], m["cpim_timestamp"] = "2026-11-25 10:00:00", "2026-11-25T10:00:00.000000+00:00"
	m["cpim_from"], m["cpim_to"] = e2eAccount, m["remote_uri"]
	return m
}

// On a stock real server, 40 messages of 900 kB that do not compress reach
// a device that is online, the small messages written after them follow,
// and then an idle poll transfers under 1 KB, although the newest row is
// a 900 kB message. They are written four a second, as someone sending
// pictures would: written all at once, A puts them faster (about 14 MB/s
// here) than B can read them in pages of at most 20 MB, one poll a
// second, and B falls behind for good (README, Known limits).
func TestLargeMessagesReachAnOnlineDeviceAndIdlePollsStayUnder1KB(t *testing.T) {
	srv := startServerArgs(t, "--strict-compat")
	m := newMeter(t, srv.url)
	proxied := &e2eServer{url: m.srv.URL + "/settings.phtml", client: srv.client}
	key := newKeyFile(t)
	a := newE2EDevice(t, "A", proxied, key, "max_message_bytes = 1048576")
	b := newE2EDevice(t, "B", proxied, key, "max_message_bytes = 1048576")
	a.start()
	b.start()
	for i := range 40 {
		msg := e2eMsg(fmt.Sprintf("big%02d", i), picture(900<<10))
		msg["content_type"] = "image/jpeg"
		a.write(fmt.Sprintf("bob/big%02d.json", i), msg)
		time.Sleep(250 * time.Millisecond) // the pace of the writer, not a wait for a condition
	}
	for i := range 10 {
		a.write(fmt.Sprintf("bob/small%02d.json", i), chatMessage(t, i, 500))
	}
	last := e2eMsg("last", picture(900<<10))
	a.write("bob/last.json", last)
	eventually(t, 180*time.Second, "51 messages on B", func() bool {
		got, _ := b.messages()
		return len(got) == 51
	}, a, b)
	ga, _ := a.messages()
	gb, _ := b.messages()
	if !sameMaps(ga, gb) {
		t.Fatalf("A holds %d messages, B %d, and they differ", len(ga), len(gb))
	}

	id := deviceID(t, b)
	since := time.Now()
	eventually(t, 60*time.Second, "10 idle polls of B", func() bool { return len(m.polls(id, since)) >= 10 }, b)
	sizes := m.polls(id, since)
	slices.Sort(sizes)
	t.Logf("%d idle polls of B: median %d bytes, largest %d", len(sizes), sizes[len(sizes)/2], sizes[len(sizes)-1])
	if median := sizes[len(sizes)/2]; median >= 1000 {
		t.Errorf("the median idle poll reply is %d bytes, want under 1 KB", median)
	}
}

// A new device joins a 6000-message history of ordinary chat text (about
// 3.6 kB a message) on a stock real server, whose pages fail above 20 MB.
func TestNewDeviceGets6000OrdinaryMessagesFromAStockServer(t *testing.T) {
	srv := startServerArgs(t, "--strict-compat")
	key := newKeyFile(t)
	a := newE2EDevice(t, "A", srv, key)
	pushHistory(t, a, 6000, 3600)
	b := newE2EDevice(t, "B", srv, key)
	b.start()
	eventually(t, 180*time.Second, "6000 messages on B", func() bool {
		got, _ := b.messages()
		return len(got) == 6000
	}, b)
}

// A server that returns the same full page whatever after_id says does not
// make the daemon poll in a loop: polls back off, and status names the
// problem.
func TestServerReturningTheSameFullPageForeverCausesNoHotLoop(t *testing.T) {
	srv := startServerArgs(t, "--ignore-after-id")
	m := newMeter(t, srv.url)
	proxied := &e2eServer{url: m.srv.URL + "/settings.phtml", client: srv.client}
	key := newKeyFile(t)
	a := newE2EDevice(t, "A", srv, key)
	pushHistory(t, a, 5000, 400)
	a.stop()
	b := newE2EDevice(t, "B", proxied, key)
	b.start()
	eventually(t, 120*time.Second, "5000 messages on B", func() bool {
		got, _ := b.messages()
		return len(got) == 5000
	}, b)
	id := deviceID(t, b)
	since := time.Now()
	cpu0 := cpuSeconds(t, b.cmd.Process.Pid)
	time.Sleep(10 * time.Second) // the window in which a loop would show
	cpu := cpuSeconds(t, b.cmd.Process.Pid) - cpu0
	n := len(m.polls(id, since))
	t.Logf("in 10 s: %d polls of a full 5000-row page, %.2f s of CPU", n, cpu)
	if n > 6 {
		t.Errorf("%d polls in 10 s of a page that never changes: a hot loop", n)
	}
	st, _ := b.status(t)
	if !strings.Contains(st.Error, "after_id") {
		t.Errorf("B's status does not name the problem: %q", st.Error)
	}
}

// pushHistory writes n ordinary chat messages of about size bytes into
// d's store, starts d and waits until it has pushed them all.
func pushHistory(t *testing.T, d *e2eDevice, n, size int) {
	t.Helper()
	for i := range n {
		d.write(fmt.Sprintf("friend%d/m%04d.json", i%7, i), chatMessage(t, i, size))
	}
	d.start()
	eventually(t, 180*time.Second, fmt.Sprintf("%s to push %d messages", d.name, n), func() bool {
		st, ok := d.status(t)
		return ok && st.OutboxDepth == 0 && st.Pushed >= int64(n)
	}, d)
}

// cpuSeconds is the user+system CPU time of process pid (Linux).
func cpuSeconds(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

package seal

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// Ordinary chat text: messages as Blink stores them, one JSON object per
// message, with a body of one to three sentences. The row-size test and
// benchmarks measure the envelope format on them, so they must look like
// real traffic: random msgids and call ids (which do not compress), a few
// peers, varied words.

// chatWords is the vocabulary of chat bodies: common words, names, some
// longer words and a few numbers, so bodies are not as repetitive as a
// small word list would make them.
var chatWords = strings.Fields(`
	the a an and or but so because if when then just really maybe probably
	I you we they he she it me us them my your our their this that these those
	is are was were be been being have has had do does did will would can could
	should might must shall not no yes ok okay sure thanks thank please sorry
	hi hello hey morning evening tonight tomorrow yesterday today later soon
	now again already still almost never always sometimes often usually
	meeting call dinner lunch breakfast coffee tea train bus flight airport
	station office home house flat kitchen garden street city weekend holiday
	Monday Tuesday Wednesday Thursday Friday Saturday Sunday January March
	June September October December Bob Carol Dave Erin Frank Grace Heidi
	Amsterdam Berlin Lisbon Madrid Rotterdam Utrecht
	time minute hour day week month year moment plan idea problem question
	answer reason picture photo video document draft report invoice ticket
	password address number message email phone laptop screen battery charger
	meet see look watch read write send call bring take make get give find
	think know believe remember forget understand explain check fix try start
	finish leave arrive stay wait hope need want like love hate prefer enjoy
	good great fine nice bad terrible awesome lovely quick slow early late
	big small long short new old young happy tired busy free ready sorry
	here there where what who why how which everything something nothing
	about after before during until with without from into onto over under
	between through around near far inside outside upstairs downstairs
	unfortunately apparently definitely absolutely particularly immediately
	conversation presentation neighbourhood responsibility appointment
	reservation recommendation disappointing extraordinary complicated
	understanding infrastructure configuration synchronization
	representative environmental accommodation international
	2 3 5 7 10 12 15 20 30 45 100 2026 7pm 8:30 9am
`)

var chatPeers = []string{
	"bob@example.com", "carol@example.org", "dave@sip2sip.info", "erin@example.net",
	"frank.de.vries@example.nl", "grace@example.com", "heidi.m@example.org", "ivan@sip2sip.info",
}

// chatSentence returns one sentence of 4 to 18 words.
func chatSentence(r *rand.Rand) string {
	n := 4 + r.IntN(15)
	words := make([]string, n)
	for i := range words {
		words[i] = chatWords[r.IntN(len(chatWords))]
	}
	words[0] = strings.ToUpper(words[0][:1]) + words[0][1:]
	if n > 8 && r.IntN(3) == 0 {
		words[n/2] += ","
	}
	return strings.Join(words, " ") + [...]string{".", ".", ".", "?", "!"}[r.IntN(5)]
}

func chatUUID(r *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func chatCallID(r *rand.Rand) string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	var b [22]byte
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b[:]) + "@10.0." + fmt.Sprint(r.IntN(256)) + "." + fmt.Sprint(r.IntN(256))
}

// blinkMessage is a chat message as Blink stores it, in Blink's field order.
type blinkMessage struct {
	MsgID         string `json:"msgid"`
	Time          string `json:"time"`
	Date          string `json:"date"`
	MediaType     string `json:"media_type"`
	Direction     string `json:"direction"`
	LocalURI      string `json:"local_uri"`
	RemoteURI     string `json:"remote_uri"`
	CPIMFrom      string `json:"cpim_from"`
	CPIMTo        string `json:"cpim_to"`
	CPIMTimestamp string `json:"cpim_timestamp"`
	Body          string `json:"body"`
	ContentType   string `json:"content_type"`
	Private       string `json:"private"`
	Status        string `json:"status"`
	CallID        string `json:"call_id"`
	Encryption    string `json:"encryption"`
}

// ordinaryChat returns n put entries of ordinary chat messages, the same
// ones for the same seed.
func ordinaryChat(n int, seed uint64) []Entry { return chatEntries(n, seed, 0) }

// chatEntries returns n put entries of chat messages whose bodies have one
// to three sentences, or as many as make minBody bytes if minBody > 0.
func chatEntries(n int, seed uint64, minBody int) []Entry {
	return chatEntriesWith(n, seed, func(r *rand.Rand) string {
		sentences := make([]string, 1+r.IntN(3))
		for j := range sentences {
			sentences[j] = chatSentence(r)
		}
		for size := len(strings.Join(sentences, " ")); size < minBody; size += 1 + len(sentences[len(sentences)-1]) {
			sentences = append(sentences, chatSentence(r))
		}
		return strings.Join(sentences, " ")
	})
}

// shortReplies are the bodies of the shortest messages.
var shortReplies = []string{"k", "?", "ok", "no", "hi", ":)", "yes", "ok!", "lol", "thx", "sure", "yes!", "great", "thanks", "see you"}

// lengthVariedChat returns n put entries of chat messages whose bodies are
// 1 to maxBody bytes long, spread evenly: chat sentences cut at a word
// boundary, or a short reply for the shortest. Their rows are as varied in
// size as chat gets, which is what padding must hide.
func lengthVariedChat(n int, seed uint64, maxBody int) []Entry {
	return chatEntriesWith(n, seed, func(r *rand.Rand) string {
		size := 1 + r.IntN(maxBody)
		var b strings.Builder
		for b.Len() < size {
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(chatSentence(r))
		}
		body := b.String()
		if len(body) > size {
			body = body[:max(strings.LastIndexByte(body[:size+1], ' '), 0)]
		}
		if len(body) < 8 {
			var fit []string
			for _, s := range shortReplies {
				if len(s) <= size {
					fit = append(fit, s)
				}
			}
			body = fit[r.IntN(len(fit))]
		}
		return body
	})
}

// chatEntriesWith returns n put entries of chat messages with bodies made
// by body.
func chatEntriesWith(n int, seed uint64, body func(*rand.Rand) string) []Entry {
	r := rand.New(rand.NewPCG(seed, 0x636861747379))
	t := time.Date(2026, 3, 2, 8, 15, 0, 0, time.UTC)
	cet := time.FixedZone("", 3600)
	out := make([]Entry, n)
	for i := range out {
		t = t.Add(time.Duration(1+r.IntN(1800)) * time.Second)
		text := body(r)
		peer := chatPeers[r.IntN(len(chatPeers))]
		m := blinkMessage{
			MsgID:         chatUUID(r),
			Time:          t.Format("2006-01-02 15:04:05"),
			Date:          t.Format("2006-01-02"),
			MediaType:     "chat",
			Direction:     "outgoing",
			LocalURI:      testAccount,
			RemoteURI:     peer,
			CPIMFrom:      "sip:" + testAccount,
			CPIMTo:        "sip:" + peer,
			CPIMTimestamp: t.In(cet).Format("2006-01-02T15:04:05.000-07:00"),
			Body:          text,
			ContentType:   "text/plain",
			Private:       "0",
			Status:        "delivered",
			CallID:        chatCallID(r),
		}
		if r.IntN(2) == 0 {
			m.Direction, m.CPIMFrom, m.CPIMTo = "incoming", m.CPIMTo, m.CPIMFrom
		}
		msg, err := json.Marshal(m)
		if err != nil {
			panic(err)
		}
		out[i] = Entry{Op: OpPut, MsgID: m.MsgID, Account: testAccount, Device: testDevice, Time: t.Add(time.Duration(r.IntN(1e9))), Message: msg}
	}
	return out
}

// TestCS2RowsOfOrdinaryChatAreSmaller is the point of cs2: journal rows of
// ordinary chat messages must be small, because the server builds pages of
// up to 5000 rows in memory and fails on large pages.
func TestCS2RowsOfOrdinaryChatAreSmaller(t *testing.T) {
	kr := mustKeyring(t, testKey(1))
	es := ordinaryChat(1000, 1)
	var sum1, sum2, msgs int
	worst, worstAt := 0.0, 0
	for i, e := range es {
		v1, v2 := sealV1(t, kr, e), sealV2(t, kr, e)
		sum1 += len(v1)
		sum2 += len(v2)
		msgs += len(e.Message)
		if r := float64(len(v2)) / float64(len(v1)); r > worst {
			worst, worstAt = r, i
		}
	}
	mean1, mean2 := float64(sum1)/float64(len(es)), float64(sum2)/float64(len(es))
	t.Logf("%d ordinary chat messages of %.0f bytes on average: cs1 rows %.0f bytes, cs2 rows %.0f bytes (%.1f%%); worst cs2/cs1 %.3f",
		len(es), float64(msgs)/float64(len(es)), mean1, mean2, 100*mean2/mean1, worst)
	if mean2 >= mean1 {
		t.Errorf("mean cs2 row %.0f bytes is not smaller than mean cs1 row %.0f bytes", mean2, mean1)
	}
	if worst > 0.70 {
		t.Errorf("message %d: its cs2 row is %.1f%% of its cs1 row, want at least 30%% smaller:\n%s", worstAt, 100*worst, es[worstAt].Message)
	}
}

// paddingCorpus is the chat that the padding tests seal: 1000 messages with
// bodies of 1 to 600 bytes.
func paddingCorpus() []Entry { return lengthVariedChat(1000, 1, 600) }

// rowSizes seals es with seal and returns the length of every envelope.
func rowSizes(t *testing.T, es []Entry, seal func(Entry) (string, error)) []int {
	t.Helper()
	sizes := make([]int, len(es))
	for i, e := range es {
		env, err := seal(e)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		sizes[i] = len(env)
	}
	return sizes
}

// distinct returns the distinct values of sizes, in order, with how often
// each occurs.
func distinct(sizes []int) (values []int, count map[int]int) {
	count = make(map[int]int)
	for _, n := range sizes {
		if count[n] == 0 {
			values = append(values, n)
		}
		count[n]++
	}
	slices.Sort(values)
	return values, count
}

func mean(sizes []int) float64 {
	sum := 0
	for _, n := range sizes {
		sum += n
	}
	return float64(sum) / float64(len(sizes))
}

// TestPaddingLeavesAHandfulOfRowSizes is the point of cs3: the server sees
// a row's length, and without padding nearly every message of another
// length makes a row of another length. Padded, 1000 messages of 1 to 600
// bytes of body make rows of a few sizes.
func TestPaddingLeavesAHandfulOfRowSizes(t *testing.T) {
	kr := mustKeyring(t, testKey(1))
	es := paddingCorpus()
	bodies := make(map[int]bool)
	for _, e := range es {
		var m blinkMessage
		if err := json.Unmarshal(e.Message, &m); err != nil {
			t.Fatal(err)
		}
		bodies[len(m.Body)] = true
	}
	if len(bodies) < 400 {
		t.Fatalf("the corpus has %d distinct body lengths; it should spread over 1 to 600", len(bodies))
	}
	unpadded, _ := distinct(rowSizes(t, es, kr.sealV2))
	padded, count := distinct(rowSizes(t, es, kr.Seal))
	// Base64 lengths are multiples of 4: cs2 rows spread over a range of
	// R bytes can have R/4 sizes at most.
	t.Logf("%d messages of %d distinct body lengths: %d distinct cs2 row sizes (%d to %d bytes), %d distinct cs3 row sizes %v (rows of each: %v)",
		len(es), len(bodies), len(unpadded), unpadded[0], unpadded[len(unpadded)-1], len(padded), padded, count)
	if len(unpadded) <= 100 {
		t.Errorf("unpadded (cs2) rows have only %d distinct sizes; the corpus is not varied enough to test padding", len(unpadded))
	}
	if len(padded) > 4 {
		t.Errorf("padded (cs3) rows have %d distinct sizes %v, want at most 4", len(padded), padded)
	}
	for _, n := range padded {
		if b, _ := payloadBucket(n - headerLenV3); b != n-headerLenV3 {
			t.Errorf("a row of %d bytes has a payload of %d bytes, not a bucket", n, n-headerLenV3)
		}
	}
}

// TestPaddingCostForOrdinaryMessages measures what padding costs, for the
// README: the mean row of the padding corpus before (cs2) and after (cs3),
// and the row of one short message. It asserts only that padding costs
// less than the row itself; `go test -v -run PaddingCost` prints the
// figures.
func TestPaddingCostForOrdinaryMessages(t *testing.T) {
	kr := mustKeyring(t, testKey(1))
	es := paddingCorpus()
	v2, v3 := rowSizes(t, es, kr.sealV2), rowSizes(t, es, kr.Seal)
	mean2, mean3 := mean(v2), mean(v3)
	sizes, count := distinct(v3)
	msgs := 0
	for _, e := range es {
		msgs += len(e.Message)
	}
	t.Logf("%d messages of %.0f bytes of JSON on average (bodies of 1 to 600 bytes): mean row %.0f bytes cs2, %.0f bytes cs3 (+%.1f%%); cs3 row sizes %v, rows of each %v",
		len(es), float64(msgs)/float64(len(es)), mean2, mean3, 100*(mean3/mean2-1), sizes, count)

	short := chatEntriesWith(1, 2, func(*rand.Rand) string { return "Running 10 minutes late, see you at the station." })[0]
	s2, s3 := rowSizes(t, []Entry{short}, kr.sealV2)[0], rowSizes(t, []Entry{short}, kr.Seal)[0]
	t.Logf("a short message (%d bytes of JSON, a 48-byte body): row %d bytes cs2, %d bytes cs3", len(short.Message), s2, s3)
	// The corpus of BenchmarkRowSizeOrdinaryChat, bodies of one to
	// three sentences, for the README's table.
	oc := ordinaryChat(1000, 1)
	oc2, oc3 := rowSizes(t, oc, kr.sealV2), rowSizes(t, oc, kr.Seal)
	ocSizes, ocCount := distinct(oc3)
	t.Logf("%d ordinary chat messages (BenchmarkRowSizeOrdinaryChat): mean row %.0f bytes cs2, %.0f bytes cs3 (+%.1f%%); cs3 row sizes %v, rows of each %v",
		len(oc), mean(oc2), mean(oc3), 100*(mean(oc3)/mean(oc2)-1), ocSizes, ocCount)
	if mean3 >= 2*mean2 {
		t.Errorf("mean padded row %.0f bytes is at least twice the unpadded %.0f bytes", mean3, mean2)
	}
}

// BenchmarkRowSizeOrdinaryChat seals and opens 1000 ordinary chat messages
// per iteration in every format and reports the mean row (envelope) size in
// bytes/row. MB/s counts message JSON bytes. The machine is shared: compare
// the formats of one run, not runs.
func BenchmarkRowSizeOrdinaryChat(b *testing.B) {
	kr := mustKeyring(b, testKey(1))
	es := ordinaryChat(1000, 1)
	msgBytes := 0
	for _, e := range es {
		msgBytes += len(e.Message)
	}
	for _, f := range []struct {
		name string
		seal func(Entry) (string, error)
	}{
		{"cs1", kr.sealV1},
		{"cs2", kr.sealV2},
		{"cs3", kr.Seal},
	} {
		envs := make([]string, len(es))
		rowBytes := 0
		for i, e := range es {
			envs[i] = mustRun(b, f.seal, e)
			rowBytes += len(envs[i])
		}
		meanRow := float64(rowBytes) / float64(len(es))
		b.Run(f.name+"/seal", func(b *testing.B) {
			b.SetBytes(int64(msgBytes))
			for b.Loop() {
				for _, e := range es {
					if _, err := f.seal(e); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(meanRow, "bytes/row")
		})
		b.Run(f.name+"/open", func(b *testing.B) {
			b.SetBytes(int64(msgBytes))
			for b.Loop() {
				for _, env := range envs {
					if _, err := kr.Open(env, testAccount); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(meanRow, "bytes/row")
		})
	}
}

func mustRun(b *testing.B, seal func(Entry) (string, error), e Entry) string {
	b.Helper()
	env, err := seal(e)
	if err != nil {
		b.Fatal(err)
	}
	return env
}

// BenchmarkDeflateLevel is the measurement behind deflateLevel: compressed
// size (bytes/row, and as a share of the JSON) and speed of each level on
// entries of chat text of three sizes.
func BenchmarkDeflateLevel(b *testing.B) {
	for _, size := range []struct {
		name    string
		n       int
		minBody int
	}{
		{"ordinary", 200, 0},
		{"4KiB", 200, 3400},
		{"256KiB", 4, 256 << 10},
	} {
		var plains [][]byte
		total := 0
		for _, e := range chatEntries(size.n, 1, size.minBody) {
			p, err := encodeEntry(e)
			if err != nil {
				b.Fatal(err)
			}
			plains = append(plains, p)
			total += len(p)
		}
		for _, level := range []int{flate.HuffmanOnly, flate.BestSpeed, 2, flate.DefaultCompression, flate.BestCompression} {
			b.Run(fmt.Sprintf("%s/level=%d", size.name, level), func(b *testing.B) {
				var out bytes.Buffer
				w, _ := flate.NewWriter(&out, level)
				zBytes := 0
				b.SetBytes(int64(total))
				for b.Loop() {
					zBytes = 0
					for _, p := range plains {
						out.Reset()
						w.Reset(&out)
						w.Write(p)
						w.Close()
						zBytes += out.Len()
					}
				}
				b.ReportMetric(float64(zBytes)/float64(len(plains)), "bytes/row")
				b.ReportMetric(float64(zBytes)/float64(total), "z/json")
			})
		}
	}
}

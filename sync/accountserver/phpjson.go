package accountserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// phpJSON encodes v the way PHP's json_encode does with its default flags:
// "/" becomes "\/", every non-ASCII rune becomes \uXXXX (a surrogate pair
// above the BMP) and "<", ">", "&" are left alone. Clients written against
// the real server see the same bytes.
func phpJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return phpEscape(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))), nil
}

// phpEscape rewrites JSON produced by encoding/json into PHP's escaping.
// encoding/json never emits "/" or non-ASCII bytes outside strings, and
// never emits "\/", so a byte-wise rewrite is safe.
func phpEscape(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/8)
	for i := 0; i < len(b); {
		c := b[i]
		if c == '/' {
			out = append(out, '\\', '/')
			i++
			continue
		}
		if c < utf8.RuneSelf {
			out = append(out, c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		i += size
		if r >= 0x10000 {
			r1, r2 := utf16.EncodeRune(r)
			out = appendU(out, r1)
			out = appendU(out, r2)
		} else {
			out = appendU(out, r)
		}
	}
	return out
}

func appendU(out []byte, r rune) []byte {
	const hex = "0123456789abcdef"
	return append(out, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
}

// errTrailing reports JSON text followed by more than white space.
var errTrailing = errors.New("trailing data after JSON value")

// phpDecodeRaw checks that s holds exactly one JSON value, as json_decode
// would accept, and returns it as a raw message.
func phpDecodeRaw(s string) (json.RawMessage, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errTrailing
	}
	return raw, nil
}

// phpTruthyJSON reports whether a decoded JSON value is truthy in PHP:
// null, false, 0, 0.0, "", "0" and [] are falsy; every object, even {},
// is truthy (json_decode returns stdClass).
func phpTruthyJSON(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return false
	}
	switch t[0] {
	case 'n', 'f':
		return false
	case 't', '{':
		return true
	case '[':
		return len(bytes.TrimSpace(t[1:len(t)-1])) > 0
	case '"':
		var s string
		if json.Unmarshal(t, &s) != nil {
			return false
		}
		return phpTruthy(s)
	default:
		f, err := strconv.ParseFloat(string(t), 64)
		return err != nil || f != 0
	}
}

// phpTruthy reports whether a request string is truthy in PHP ("" and "0"
// are not).
func phpTruthy(s string) bool { return s != "" && s != "0" }

// kv is one member of a JSON object, in input order.
type kv struct {
	Key   string
	Value json.RawMessage
}

// objectMembers returns the members of a JSON object in input order. A
// repeated key keeps its first position and takes the last value, like a
// PHP stdClass built by json_decode.
func objectMembers(raw json.RawMessage) ([]kv, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil { // {
		return nil, err
	}
	var out []kv
	pos := map[string]int{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if i, ok := pos[key]; ok {
			out[i].Value = v
			continue
		}
		pos[key] = len(out)
		out = append(out, kv{key, v})
	}
	return out, nil
}

// arrayElements returns the elements of a JSON array.
func arrayElements(raw json.RawMessage) ([]json.RawMessage, error) {
	var out []json.RawMessage
	err := json.Unmarshal(raw, &out)
	return out, err
}

// collection returns the values a PHP foreach would visit in a decoded
// JSON array or object; for any other value it reports false.
func collection(raw json.RawMessage) ([]json.RawMessage, bool) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return nil, false
	}
	switch t[0] {
	case '[':
		els, err := arrayElements(t)
		return els, err == nil
	case '{':
		mem, err := objectMembers(t)
		if err != nil {
			return nil, false
		}
		out := make([]json.RawMessage, len(mem))
		for i, m := range mem {
			out[i] = m.Value
		}
		return out, true
	}
	return nil, false
}

// canonicalJSON re-encodes a JSON value the way PHP would after
// json_decode + json_encode: object key order kept, strings re-escaped,
// numbers normalised. It is used to echo a client's put id.
func canonicalJSON(raw json.RawMessage) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var out bytes.Buffer
	if err := writeCanonical(dec, &out); err != nil {
		return nil, err
	}
	return json.RawMessage(out.Bytes()), nil
}

func writeCanonical(dec *json.Decoder, out *bytes.Buffer) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch v := tok.(type) {
	case json.Delim:
		obj := v == '{'
		out.WriteByte(byte(v))
		for i := 0; dec.More(); i++ {
			if i > 0 {
				out.WriteByte(',')
			}
			if obj {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				s, _ := k.(string)
				writeJSONString(out, s)
				out.WriteByte(':')
			}
			if err := writeCanonical(dec, out); err != nil {
				return err
			}
		}
		end, err := dec.Token()
		if err != nil {
			return err
		}
		out.WriteByte(byte(end.(json.Delim)))
	case string:
		writeJSONString(out, v)
	case json.Number:
		out.WriteString(phpJSONNumber(v))
	case bool:
		out.WriteString(strconv.FormatBool(v))
	case nil:
		out.WriteString("null")
	}
	return nil
}

func writeJSONString(out *bytes.Buffer, s string) {
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)           // cannot fail for a string
	out.Truncate(out.Len() - 1) // drop Encode's newline
}

// phpJSONNumber returns how json_encode writes a number that came from
// json_decode: integers that fit in int64 unchanged, everything else as a
// float.
func phpJSONNumber(n json.Number) string {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return strconv.FormatInt(i, 10)
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return "0"
	}
	b, _ := json.Marshal(f)
	return string(b)
}

// phpScalarString converts a decoded JSON scalar to the string PHP's
// (string) cast would give (12.50 → "12.5", true → "1", false → "").
// It reports false for arrays and objects.
func phpScalarString(raw json.RawMessage) (string, bool) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return "", false
	}
	switch t[0] {
	case '"':
		var s string
		if json.Unmarshal(t, &s) != nil {
			return "", false
		}
		return s, true
	case 't':
		return "1", true
	case 'f', 'n':
		return "", true
	case '[', '{':
		return "", false
	}
	if i, err := strconv.ParseInt(string(t), 10, 64); err == nil {
		return strconv.FormatInt(i, 10), true
	}
	f, err := strconv.ParseFloat(string(t), 64)
	if err != nil && !math.IsInf(f, 0) {
		return "", false
	}
	return phpFloatString(f), true
}

// phpFloatString formats f like PHP 8's (string) cast (precision 14).
func phpFloatString(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "INF"
	case math.IsInf(f, -1):
		return "-INF"
	case math.IsNaN(f):
		return "NAN"
	case f == 0:
		if math.Signbit(f) {
			return "-0"
		}
		return "0"
	}
	s := strconv.FormatFloat(f, 'G', 14, 64)
	mant, exp, ok := strings.Cut(s, "E")
	if !ok {
		return s
	}
	if !strings.Contains(mant, ".") {
		mant += ".0"
	}
	sign := exp[:1]
	digits := strings.TrimLeft(exp[1:], "0")
	if digits == "" {
		digits = "0"
	}
	return mant + "E" + sign + digits
}

// phpIntval mimics PHP's intval on a request string: leading white space,
// an optional sign and the leading digits; anything else gives 0.
// Overflow saturates.
func phpIntval(s string) int64 {
	s = strings.TrimLeft(s, " \t\n\r\v\f")
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	var n int64
	for i := 0; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		d := int64(s[i] - '0')
		if n > (math.MaxInt64-d)/10 {
			if neg {
				return math.MinInt64
			}
			return math.MaxInt64
		}
		n = n*10 + d
	}
	if neg {
		return -n
	}
	return n
}

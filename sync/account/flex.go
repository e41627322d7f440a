package account

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"sort"
	"strconv"
)

// The real server encodes whatever PHP and the SOAP backend hand it: column
// values as strings, counts as numbers, absent values as null. These types
// decode a field leniently into the Go type the API promises.

// flexString accepts a string, null (""), a number or a boolean (its JSON
// text). Objects and arrays are refused.
type flexString string

func (s *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0:
		return errors.New("empty value")
	case b[0] == '"':
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = flexString(v)
	case string(b) == "null":
		*s = ""
	case b[0] == '{' || b[0] == '[':
		return errors.New("want a string, got an object or array")
	default:
		*s = flexString(b)
	}
	return nil
}

// flexInt accepts an integer as a JSON number (integral floats too) or a
// numeric string; null is 0.
type flexInt int64

func (n *flexInt) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		*n = 0
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s == "" {
			*n = 0
			return nil
		}
		b = []byte(s)
	}
	v, err := parseInteger(string(b))
	if err != nil {
		return err
	}
	*n = flexInt(v)
	return nil
}

// parseInteger parses a decimal integer, or a float with no fractional part.
func parseInteger(s string) (int64, error) {
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, errors.New("not an integer: " + strconv.Quote(truncate(s, 40)))
	}
	return int64(f), nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// flexStrings accepts an array of flexString, a single string, null, or an
// object (its values, in key order: PHP encodes arrays with holes or string
// keys as objects).
type flexStrings []string

func (l *flexStrings) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case string(b) == "null":
		*l = nil
		return nil
	case len(b) > 0 && b[0] == '[':
		var raw []flexString
		if err := json.Unmarshal(b, &raw); err != nil {
			return err
		}
		out := make([]string, len(raw))
		for i, s := range raw {
			out[i] = string(s)
		}
		*l = out
		return nil
	case len(b) > 0 && b[0] == '{':
		var m map[string]flexString
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sortKeys(keys)
		out := make([]string, len(keys))
		for i, k := range keys {
			out[i] = string(m[k])
		}
		*l = out
		return nil
	default:
		var s flexString
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*l = []string{string(s)}
		return nil
	}
}

// sortKeys sorts numerically when every key is an integer (PHP list
// indexes), lexically otherwise.
func sortKeys(keys []string) {
	numeric := true
	for _, k := range keys {
		if _, err := strconv.ParseInt(k, 10, 64); err != nil {
			numeric = false
			break
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if numeric {
			a, _ := strconv.ParseInt(keys[i], 10, 64)
			b, _ := strconv.ParseInt(keys[j], 10, 64)
			return a < b
		}
		return keys[i] < keys[j]
	})
}

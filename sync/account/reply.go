package account

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxJSONStarts bounds how many positions cleanReply tries as the start of
// the JSON value when text precedes it. Each try costs one pass over the
// rest of the body, so the work is at most maxJSONStarts passes, never
// quadratic in the body size. Real prefixes (PHP notices, the stray
// "Key X changed" text, an HTML error fragment) hold no bracket of the
// kind that opens the reply, or very few.
const maxJSONStarts = 8

// errUnknownDomain marks the "no domainFilter" reply until send words it
// with the account's domain.
var errUnknownDomain = errors.New("unknown domain")

// maxServerText bounds server-provided text copied into an error message.
const maxServerText = 300

// cleanReply extracts the JSON value from the body of a 2xx reply, undoing
// the real server's quirks (PROTOCOL §3, §5.8, §8, §11.2):
//
//   - an empty body is a server failure (PHP fatal error, or json_encode
//     failing on invalid UTF-8);
//   - "Invalid credentials from %s" and "error: no domainFilter ..." are
//     authentication / configuration failures sent with status 200;
//   - text before the JSON is accepted when it is only PHP warnings,
//     notices or deprecations, or set_call_forwarding's stray
//     "Key X changed ..." text; a getter's HTML error fragment, a PHP fatal
//     error or a MySQL error text make it a server error; anything else
//     makes it a malformed reply;
//   - a body that holds no JSON value at its end is a malformed reply, or a
//     server error when it is recognisably one.
//
// The returned *Error has no Action or StatusCode; the caller fills them.
func cleanReply(body []byte) ([]byte, *Error) {
	b := bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, &Error{Kind: KindServer, Message: "the server sent an empty reply (an internal error on the server)"}
	}
	if bytes.HasPrefix(b, []byte("Invalid credentials from")) {
		return nil, &Error{Kind: KindAuth, Message: "the server rejected the digest credentials (\"Invalid credentials\")"}
	}
	if bytes.HasPrefix(b, []byte("error: no domainFilter")) {
		return nil, &Error{Kind: KindAuth, Message: serverText(b), Err: errUnknownDomain}
	}
	// Fast path: the whole body is JSON.
	if b[0] == '{' || b[0] == '[' || b[0] == 'n' || b[0] == 't' || b[0] == 'f' || b[0] == '"' || b[0] == '-' || (b[0] >= '0' && b[0] <= '9') {
		if json.Valid(b) {
			return b, nil
		}
	}
	start, tooMany := findJSONStart(b)
	if start < 0 {
		if e := classifyText(b, false); e != nil {
			return nil, e
		}
		if tooMany {
			return nil, &Error{Kind: KindMalformed, Message: fmt.Sprintf("no JSON reply found within the first %d candidate starts", maxJSONStarts)}
		}
		if looksLikeHTML(b) {
			return nil, &Error{Kind: KindMalformed, Message: "the reply is an HTML page, not JSON: check settings_url"}
		}
		return nil, &Error{Kind: KindMalformed, Message: fmt.Sprintf("the reply is not JSON (%d bytes)", len(b))}
	}
	if e := classifyText(b[:start], true); e != nil {
		// The real page prints its HTML header before the JSON when the
		// action name holds none of the API markers (get_, set_, ...; an
		// unknown action sent through Do, PROTOCOL §1). The envelope that
		// follows is the answer.
		if e.Kind == KindMalformed && looksLikeHTML(b[:start]) && hasSuccessKey(b[start:]) {
			return b[start:], nil
		}
		return nil, e
	}
	return b[start:], nil
}

// jsonObjectStart reports whether the body that begins with p is, as far
// as cleanReply is concerned, a JSON object with nothing before it: after
// an optional UTF-8 BOM and white space (what cleanReply trims), the next
// byte is '{'. It returns the offset of that byte. A rune cut at the end of
// p, or p holding nothing else, gives false.
func jsonObjectStart(p []byte) (int, bool) {
	i := 0
	if bytes.HasPrefix(p, []byte("\xef\xbb\xbf")) {
		i = 3
	}
	for i < len(p) {
		if p[i] == '{' {
			return i, true
		}
		r, n := utf8.DecodeRune(p[i:])
		if !unicode.IsSpace(r) {
			return 0, false
		}
		i += n
	}
	return 0, false
}

// hasSuccessKey reports whether js is a JSON object with a "success" key.
func hasSuccessKey(js []byte) bool {
	if len(js) == 0 || js[0] != '{' {
		return false
	}
	var env struct {
		Success json.RawMessage `json:"success"`
	}
	return json.Unmarshal(js, &env) == nil && env.Success != nil
}

// findJSONStart returns the smallest index i such that b[i:] is one valid
// JSON value, trying at most maxJSONStarts positions. The JSON always ends
// the body, so its last byte tells which opener to look for.
func findJSONStart(b []byte) (start int, tooMany bool) {
	var opener byte
	switch {
	case bytes.HasSuffix(b, []byte("}")):
		opener = '{'
	case bytes.HasSuffix(b, []byte("]")):
		opener = '['
	case bytes.HasSuffix(b, []byte("null")):
		// A getter's error fragment followed by the property's null.
		i := len(b) - 4
		if i > 0 && isWordByte(b[i-1]) {
			return -1, false
		}
		return i, false
	default:
		return -1, false
	}
	tries := 0
	for i := 0; i < len(b); {
		j := bytes.IndexByte(b[i:], opener)
		if j < 0 {
			return -1, false
		}
		i += j
		if tries == maxJSONStarts {
			return -1, true
		}
		tries++
		if json.Valid(b[i:]) {
			return i, false
		}
		i++
	}
	return -1, false
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

func looksLikeHTML(b []byte) bool {
	head := b[:min(len(b), 512)]
	lower := bytes.ToLower(head)
	return bytes.Contains(lower, []byte("<html")) || bytes.Contains(lower, []byte("<!doctype")) ||
		bytes.Contains(lower, []byte("<head")) || bytes.Contains(lower, []byte("<body"))
}

// classifyText looks at text the server printed instead of, or before, the
// JSON. It returns nil when the text is harmless (only when prefix is true:
// PHP warnings/notices, the stray forwarding text) and an error otherwise.
// For a whole body with no JSON it returns nil when nothing is recognised,
// leaving the wording to the caller.
func classifyText(t []byte, prefix bool) *Error {
	if i := bytes.Index(t, []byte("alert-error")); i >= 0 {
		return &Error{Kind: KindServer, Message: "the server reported an error: " + fragmentText(t, i)}
	}
	text := stripTags(t)
	unknown := 0
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		l := strings.TrimPrefix(line, "PHP ")
		switch {
		case hasAnyPrefix(l, "Fatal error", "Parse error", "Uncaught", "Catchable fatal error"):
			return &Error{Kind: KindServer, Message: "the server failed with a PHP error: " + serverText([]byte(line))}
		case strings.HasPrefix(l, "MySQL error") || strings.HasPrefix(l, "Database error") || l == "Session halted.":
			return &Error{Kind: KindServer, Message: "the server failed with a database error: " + serverText([]byte(line))}
		case hasAnyPrefix(l, "Warning:", "Notice:", "Deprecated:", "Strict Standards:", "Warning</b>", "Notice</b>"):
			// PHP diagnostics with display_errors on (PROTOCOL §11.2.3).
		case strings.HasPrefix(l, "Key ") && strings.Contains(l, " changed"):
			// set_call_forwarding's leftover printf (PROTOCOL §5.8).
		default:
			unknown++
		}
	}
	if !prefix {
		return nil
	}
	if unknown > 0 {
		return &Error{Kind: KindMalformed, Message: fmt.Sprintf("%d bytes of unrecognised text before the JSON reply", len(t))}
	}
	return nil
}

func hasAnyPrefix(s string, ps ...string) bool {
	for _, p := range ps {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// fragmentText returns the text of the HTML error fragment around the
// "alert-error" marker at i: the content of the element it opens, tags
// stripped, entities decoded, whitespace collapsed.
func fragmentText(t []byte, i int) string {
	rest := t[i:]
	if j := bytes.IndexByte(rest, '>'); j >= 0 {
		rest = rest[j+1:]
	}
	if j := bytes.Index(rest, []byte("</span>")); j >= 0 {
		rest = rest[:j]
	} else if j := bytes.Index(rest, []byte("</div>")); j >= 0 {
		rest = rest[:j]
	}
	s := serverText([]byte(stripTags(rest)))
	if s == "" {
		s = serverText([]byte(stripTags(t)))
	}
	return s
}

// stripTags removes <...> tags and decodes HTML entities, in one pass.
func stripTags(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b))
	in := false
	for _, c := range b {
		switch {
		case c == '<':
			in = true
		case c == '>' && in:
			in = false
		case !in:
			sb.WriteByte(c)
		}
	}
	return html.UnescapeString(sb.String())
}

// serverText makes server-provided text safe and short for an error
// message: valid UTF-8, whitespace collapsed, at most maxServerText runes.
func serverText(b []byte) string {
	s := strings.ToValidUTF8(string(b[:min(len(b), 4*maxServerText)]), "\uFFFD")
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > maxServerText {
		r := []rune(s)
		s = string(r[:maxServerText]) + "…"
	}
	return s
}

// checkEnvelope interprets "success" and "error_message" of a cleaned reply.
// With requireSuccess, the reply must be an object with "success" (setters,
// journal); otherwise "success" is checked only when present. It returns
// error_message (the confirmation text on success, possibly localized).
func checkEnvelope(js []byte, requireSuccess bool) (string, *Error) {
	if len(js) == 0 || js[0] != '{' {
		if requireSuccess {
			return "", &Error{Kind: KindMalformed, Message: "reply is not a JSON object"}
		}
		return "", nil
	}
	var env struct {
		Success      json.RawMessage `json:"success"`
		ErrorMessage json.RawMessage `json:"error_message"`
	}
	if err := json.Unmarshal(js, &env); err != nil {
		return "", &Error{Kind: KindMalformed, Message: "reply is not a JSON object", Err: err}
	}
	msg := rawText(env.ErrorMessage)
	switch s := string(env.Success); s {
	case "true":
		return msg, nil
	case "false":
		if msg == "" {
			msg = "no reason given"
		}
		return "", &Error{Kind: KindRejected, Message: "the server refused: " + msg}
	case "":
		if !requireSuccess {
			return msg, nil
		}
		if msg != "" {
			return "", &Error{Kind: KindRejected, Message: "the server refused: " + msg + " (reply has no success flag)"}
		}
		return "", &Error{Kind: KindMalformed, Message: "reply has no success flag"}
	default:
		return "", &Error{Kind: KindMalformed, Message: "reply has a non-boolean success flag"}
	}
}

// rawText renders a JSON value meant to be a string: strings are decoded,
// null is "", other values keep their JSON text.
func rawText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return serverText([]byte(s))
		}
	}
	return serverText(raw)
}

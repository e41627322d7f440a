package account

import (
	"net/http"
	"strings"

	"github.com/icholy/digest"
)

// findChallenge is digest.Transport.FindChallenge. It returns the first
// Digest challenge in the WWW-Authenticate headers that can be answered
// (algorithm absent or MD5, qop absent or including auth), or
// digest.ErrNoChallenge.
//
// Why not icholy's parser: it accepts only [A-Za-z0-9-] in unquoted values,
// so `realm=example.com`, `algorithm=MD5-sess` or a base64 nonce sent
// unquoted fail to parse, and it skips only spaces, not tabs. And when a
// challenge does not parse, digest.Transport returns the parse error in
// place of the 401 reply, which would surface as a transport error (and be
// retried as such) instead of an authentication failure. This parser
// follows RFC 7235 (token or quoted-string values, optional whitespace
// around commas and "=") and reports failure as ErrNoChallenge, which makes
// digest.Transport hand us the 401. The real server's two formats (with and
// without a space after the commas, stale=true unquoted) parse with both.
func findChallenge(h http.Header) (*digest.Challenge, error) {
	for _, v := range h.Values("WWW-Authenticate") {
		for _, c := range parseDigestChallenges(v) {
			if answerable(c) {
				return c, nil
			}
		}
	}
	return nil, digest.ErrNoChallenge
}

// answerable reports whether we can answer c the way the server checks it.
func answerable(c *digest.Challenge) bool {
	if c.Nonce == "" {
		return false
	}
	switch strings.ToUpper(c.Algorithm) {
	case "", "MD5":
	default:
		return false
	}
	return len(c.QOP) == 0 || c.SupportsQOP("auth")
}

// parseDigestChallenges parses one WWW-Authenticate value, which may hold
// several challenges ("Basic realm=x, Digest realm=y, nonce=z"), and
// returns the Digest ones. Bad syntax ends the parse; what was complete is
// kept.
func parseDigestChallenges(v string) []*digest.Challenge {
	var out []*digest.Challenge
	p := &hdrParser{s: v}
	var cur *digest.Challenge
	for {
		p.skipSpaceAndCommas()
		if p.eof() {
			break
		}
		name := p.token()
		if name == "" {
			break
		}
		p.skipSpace()
		if p.peek() != '=' {
			// A new auth scheme starts here.
			cur = nil
			if strings.EqualFold(name, "Digest") {
				cur = &digest.Challenge{}
				out = append(out, cur)
			}
			continue
		}
		p.pos++ // '='
		p.skipSpace()
		var val string
		if p.peek() == '"' {
			var ok bool
			val, ok = p.quoted()
			if !ok {
				break
			}
		} else {
			val = p.tokenValue()
		}
		if cur != nil {
			setChallengeParam(cur, strings.ToLower(name), val)
		}
	}
	return out
}

func setChallengeParam(c *digest.Challenge, key, val string) {
	switch key {
	case "realm":
		c.Realm = val
	case "nonce":
		c.Nonce = val
	case "opaque":
		c.Opaque = val
	case "algorithm":
		c.Algorithm = val
	case "stale":
		c.Stale = strings.EqualFold(val, "true")
	case "domain":
		c.Domain = strings.Fields(val)
	case "charset":
		c.Charset = val
	case "userhash":
		c.Userhash = strings.EqualFold(val, "true")
	case "qop":
		c.QOP = nil
		for q := range strings.SplitSeq(val, ",") {
			if q = strings.ToLower(strings.TrimSpace(q)); q != "" {
				c.QOP = append(c.QOP, q)
			}
		}
	}
}

type hdrParser struct {
	s   string
	pos int
}

func (p *hdrParser) eof() bool { return p.pos >= len(p.s) }

func (p *hdrParser) peek() byte {
	if p.eof() {
		return 0
	}
	return p.s[p.pos]
}

func (p *hdrParser) skipSpace() {
	for !p.eof() && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t') {
		p.pos++
	}
}

func (p *hdrParser) skipSpaceAndCommas() {
	for !p.eof() && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t' || p.s[p.pos] == ',') {
		p.pos++
	}
}

// isTokenChar reports whether c is an RFC 7230 tchar.
func isTokenChar(c byte) bool {
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func (p *hdrParser) token() string {
	start := p.pos
	for !p.eof() && isTokenChar(p.s[p.pos]) {
		p.pos++
	}
	return p.s[start:p.pos]
}

// tokenValue reads an unquoted value: a token, also allowing "/" and "="
// (token68, e.g. an unquoted base64 nonce).
func (p *hdrParser) tokenValue() string {
	start := p.pos
	for !p.eof() {
		c := p.s[p.pos]
		if !isTokenChar(c) && c != '/' && c != '=' {
			break
		}
		p.pos++
	}
	return p.s[start:p.pos]
}

// quoted reads a quoted-string with backslash escapes.
func (p *hdrParser) quoted() (string, bool) {
	p.pos++ // opening quote
	var b strings.Builder
	for !p.eof() {
		c := p.s[p.pos]
		p.pos++
		switch c {
		case '"':
			return b.String(), true
		case '\\':
			if p.eof() {
				return "", false
			}
			b.WriteByte(p.s[p.pos])
			p.pos++
		default:
			b.WriteByte(c)
		}
	}
	return "", false
}

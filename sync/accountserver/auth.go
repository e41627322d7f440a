package accountserver

import (
	"crypto/md5"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// nonceLifetime is how far ahead of now a nonce's expiry T lies.
const nonceLifetime = 300 * time.Second

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// realmFor picks the digest realm from the request's realm parameter the
// way the real server does: the part after "@" when there is one, the
// value as is otherwise, "SIP_settings" without the parameter.
func realmFor(p params) string {
	r, ok := p.lookup("realm")
	if !ok {
		return "SIP_settings"
	}
	if _, after, found := strings.Cut(r, "@"); found {
		return after
	}
	return r
}

// newNonce returns base64(T ":" md5hex(T ":" key)), T being the expiry in
// unix seconds with 4 decimals. It is stateless: any server with the same
// key (the file in the data dir) accepts it until T.
func (s *Server) newNonce() string {
	exp := s.now().Add(nonceLifetime)
	t := strconv.FormatFloat(float64(exp.UnixNano())/1e9, 'f', 4, 64)
	return base64.StdEncoding.EncodeToString([]byte(t + ":" + md5hex(t+":"+s.nonceKey)))
}

// checkNonce reports whether the nonce carries a valid MAC and whether it
// has expired.
func (s *Server) checkNonce(nonce string) (valid, expired bool) {
	raw, err := base64.StdEncoding.DecodeString(nonce)
	if err != nil {
		return false, false
	}
	t, mac, ok := strings.Cut(string(raw), ":")
	if !ok || subtle.ConstantTimeCompare([]byte(mac), []byte(md5hex(t+":"+s.nonceKey))) != 1 {
		return false, false
	}
	exp, err := strconv.ParseFloat(t, 64)
	if err != nil {
		return false, false
	}
	now := float64(s.now().UnixNano()) / 1e9
	return true, now > exp
}

// challenge writes a 401 with an empty body. The first challenge has
// spaces after the commas; re-challenges after a failed attempt have none,
// and a stale one adds stale=true — byte for byte like the real server.
func (s *Server) challenge(w http.ResponseWriter, realm string, retry, stale bool) {
	nonce, opaque := s.newNonce(), md5hex(realm)
	var v string
	switch {
	case stale:
		v = fmt.Sprintf(`Digest realm="%s",qop="auth",nonce="%s",stale=true, opaque="%s"`, realm, nonce, opaque)
	case retry:
		v = fmt.Sprintf(`Digest realm="%s",qop="auth",nonce="%s",opaque="%s"`, realm, nonce, opaque)
	default:
		v = fmt.Sprintf(`Digest realm="%s", qop="auth", nonce="%s", opaque="%s"`, realm, nonce, opaque)
	}
	w.Header().Set("WWW-Authenticate", v)
	w.Header().Set("Content-Type", contentTypeHTML)
	w.WriteHeader(http.StatusUnauthorized)
}

// digestParts are the parts http_digest_parse requires, in the order its
// regular expression tries them.
var digestParts = []string{"nonce", "nc", "cnonce", "qop", "username", "uri", "response"}

// parseDigest mirrors cdrtool's http_digest_parse: an unanchored scan for
// name=value where value is quoted ('...' or "...", at least one
// character, non-greedy) or a run without white space and commas. It
// returns nil unless all seven parts are present.
func parseDigest(txt string) map[string]string {
	out := map[string]string{}
	for i := 0; i < len(txt); {
		matched := false
		for _, name := range digestParts {
			if !strings.HasPrefix(txt[i:], name+"=") {
				continue
			}
			j := i + len(name) + 1
			if val, end, ok := digestValue(txt, j); ok {
				out[name] = val
				i = end
				matched = true
				break
			}
		}
		if !matched {
			i++
		}
	}
	for _, p := range digestParts {
		if _, ok := out[p]; !ok {
			return nil
		}
	}
	return out
}

func digestValue(txt string, j int) (val string, end int, ok bool) {
	if j < len(txt) && (txt[j] == '"' || txt[j] == '\'') {
		q := txt[j]
		// [^\2]+? then the same quote: at least one character that is
		// not \x02, up to the nearest closing quote.
		for k := j + 2; k < len(txt); k++ {
			if txt[k-1] == 2 {
				break
			}
			if txt[k] == q {
				v := txt[j+1 : k]
				if v == "0" { // $m[3] ? $m[3] : $m[4] — "0" is falsy
					v = ""
				}
				return v, k + 1, true
			}
		}
	}
	k := j
	for k < len(txt) && !strings.ContainsRune(" \t\n\r\f\v,", rune(txt[k])) {
		k++
	}
	if k == j {
		return "", 0, false
	}
	return txt[j:k], k, true
}

// authOutcome says what authenticate did with the request.
type authOutcome int

const (
	authOK      authOutcome = iota
	authReplied             // a reply (401 or 200 text) was written
)

// authenticate runs the digest check of PROTOCOL §2.2 and returns the
// account on success. On failure it has written the reply.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, p params) (*Account, authOutcome) {
	realm := realmFor(p)
	hdr := r.Header.Get("Authorization")
	txt, isDigest := cutDigest(hdr)
	if !isDigest || strings.TrimSpace(txt) == "" {
		s.challenge(w, realm, false, false)
		return nil, authReplied
	}
	d := parseDigest(txt)
	if d == nil {
		writeText(w, http.StatusOK, "Invalid credentials from %s")
		return nil, authReplied
	}
	user, domain, found := strings.Cut(d["username"], "@")
	if !found {
		domain = realm
	}
	set := s.accts.Load()
	if !set.domains[domain] {
		writeText(w, http.StatusOK, "error: no domainFilter available in ngnpro_engines.inc")
		return nil, authReplied
	}
	acct := set.accounts[strings.ToLower(user)+"@"+domain]
	if acct == nil {
		s.log.Info("login failed: no such account", "realm", realm, "domain", domain)
		s.challenge(w, realm, true, false)
		return nil, authReplied
	}
	var ha1, how string
	switch {
	case acct.WebPassword != "":
		ha1 = md5hex(strings.ToLower(acct.user()) + ":" + strings.ToLower(acct.domain()) + ":" + acct.WebPassword)
		how = "web password"
	case acct.HA1 != "":
		ha1 = acct.HA1
		how = "encrypted password"
	default:
		ha1 = md5hex(d["username"] + ":" + realm + ":" + acct.Password)
		how = "cleartext password"
	}
	want := md5hex(ha1 + ":" + d["nonce"] + ":" + d["nc"] + ":" + d["cnonce"] + ":" + d["qop"] + ":" + md5hex(r.Method+":"+d["uri"]))
	if subtle.ConstantTimeCompare([]byte(want), []byte(d["response"])) != 1 {
		s.log.Info("login failed: wrong response", "account", acct.Address)
		s.challenge(w, realm, true, false)
		return nil, authReplied
	}
	valid, expired := s.checkNonce(d["nonce"])
	if !valid {
		s.log.Info("login failed: bad nonce", "account", acct.Address)
		s.challenge(w, realm, true, false)
		return nil, authReplied
	}
	if expired {
		s.challenge(w, realm, true, true)
		return nil, authReplied
	}
	s.log.Debug(acct.Address+" logged in "+how, "remote", r.RemoteAddr)
	return acct, authOK
}

// cutDigest strips the "Digest " scheme, as PHP does before filling
// PHP_AUTH_DIGEST.
func cutDigest(h string) (string, bool) {
	if len(h) < 7 || !strings.EqualFold(h[:7], "Digest ") {
		return "", false
	}
	return h[7:], true
}

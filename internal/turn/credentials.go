package turn

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // HMAC-SHA1 is what the TURN REST-API scheme and every client use
	"encoding/base64"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/pion/turn/v5"

	"github.com/onair-live/onair/internal/media"
)

// ICEServers are this server's URLs on host (a name or IP the client can
// reach), with a new credential for user that expires TTL from now.
func (s *Server) ICEServers(host, user string) []media.ICEServer {
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]" // IPv6
	}
	var urls []string
	if s.cfg.Port > 0 {
		p := strconv.Itoa(s.cfg.Port)
		urls = append(urls, "turn:"+host+":"+p+"?transport=udp", "turn:"+host+":"+p+"?transport=tcp")
	}
	if s.cfg.TLSPort > 0 {
		urls = append(urls, "turns:"+host+":"+strconv.Itoa(s.cfg.TLSPort)+"?transport=tcp")
	}
	name, pass := Credential(s.cfg.Secret, user, time.Now().Add(s.cfg.TTL))
	return []media.ICEServer{{URLs: urls, Username: name, Credential: pass}}
}

// Credential is the TURN REST-API credential of user that expires at
// expiry: the username is "<expiry in Unix seconds>:<user>", the password
// the base64 of its HMAC-SHA1 under secret. Anyone who holds the secret
// (another service of yours, say) can mint them.
func Credential(secret, user string, expiry time.Time) (username, password string) {
	username = strconv.FormatInt(expiry.Unix(), 10) + ":" + user
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// authenticate is pion's AuthHandler: it accepts a REST-API username that
// has not expired, with the key of its password; a wrong password then
// fails pion's integrity check (counted in events). The user part is the
// user whose allocations are capped.
func (s *Server) authenticate(ra *turn.RequestAttributes) (string, []byte, bool) {
	exp, user, ok := strings.Cut(ra.Username, ":")
	t, err := strconv.ParseInt(exp, 10, 64)
	if !ok || err != nil || user == "" {
		s.log.Debug("TURN request refused: username is not <expiry>:<user>", "remote", addrString(ra.SrcAddr))
		s.refused(RefusedAuth)
		return "", nil, false
	}
	if time.Now().Unix() > t {
		s.log.Debug("TURN request refused: credential expired", "remote", addrString(ra.SrcAddr),
			"expired", time.Unix(t, 0).UTC())
		s.refused(RefusedExpired)
		return "", nil, false
	}
	_, pass := Credential(s.cfg.Secret, user, time.Unix(t, 0))
	return user, turn.GenerateAuthKey(ra.Username, ra.Realm, pass), true
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

package loadtest

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/onair-live/onair/internal/auth"
)

// tokens gives each simulated user the token its requests carry against a
// server that wants them (-auth-secret): with -secret, one minted per user
// (publish and view, on the run's room only); with -token, that one for
// the publisher, whose identity is then the token's subject. Without
// either, no request carries a token (trusted mode).
type tokens struct {
	secret    []byte
	publisher string // -token
	ttl       time.Duration

	mu     sync.Mutex
	room   string
	minted map[string]string
}

func newTokens(o *Options) *tokens {
	if o.Secret == "" && o.Token == "" {
		return nil
	}
	// Long enough for the whole run: every viewer joining, the window, the
	// teardown.
	ttl := time.Hour + o.Duration + time.Duration(float64(o.Viewers)/max(o.Rate, 1)*float64(time.Second))
	return &tokens{secret: []byte(o.Secret), publisher: o.Token, ttl: ttl, room: o.Room, minted: map[string]string{}}
}

// of is the token of the user email ("" for none).
func (t *tokens) of(email string) string {
	if t == nil || email == "" {
		return ""
	}
	if t.publisher != "" && email == tokenSubject(t.publisher) {
		return t.publisher
	}
	if len(t.secret) == 0 {
		return ""
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if tok, ok := t.minted[email]; ok {
		return tok
	}
	tok, err := auth.Mint(t.secret, auth.Claims{Subject: email, Grants: []string{"publish", "view"}, Room: t.room,
		IssuedAt: time.Now().Unix(), ExpiresAt: time.Now().Add(t.ttl).Unix()})
	if err != nil {
		return "" // the server will say 401, and the run report it
	}
	t.minted[email] = tok
	return tok
}

// checkTokens rejects token flags that cannot work.
func (o *Options) checkTokens() error {
	if o.Secret != "" && len(o.Secret) < auth.MinSecretBytes {
		return errors.New("-secret: the server's signing secret is at least 32 bytes")
	}
	if o.Token == "" {
		return nil
	}
	if tokenSubject(o.Token) == "" {
		return errors.New("-token: not a token (mint one with: onair token -sub NAME -grant publish -room ROOM)")
	}
	if o.Viewers > 0 && o.Secret == "" {
		return errors.New("-token is the publisher's: each viewer needs a token of its own, so give -secret (the server's signing secret) to mint them")
	}
	return nil
}

// tokenSubject reads the subject of a token without checking it (the
// server does); "" if it is not a token.
func tokenSubject(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(b, &c) != nil {
		return ""
	}
	return c.Sub
}

// publisherEmail is the publisher's identity: -token's subject, or one
// made from the room.
func publisherEmail(o *Options) string {
	if sub := tokenSubject(o.Token); sub != "" {
		return sub
	}
	return o.Room + "-presenter"
}

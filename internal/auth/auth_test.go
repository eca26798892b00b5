package auth_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/auth"
)

var (
	secret = []byte("0123456789abcdef0123456789abcdef")
	other  = []byte("fedcba9876543210fedcba9876543210")
	t0     = time.Unix(1_767_225_600, 0)
)

func verifier(t *testing.T, keys ...[]byte) *auth.Verifier {
	t.Helper()
	v, err := auth.NewVerifier(keys)
	if err != nil {
		t.Fatal(err)
	}
	return v.WithClock(func() time.Time { return t0 })
}

func mint(t *testing.T, key []byte, c auth.Claims) string {
	t.Helper()
	if c.ExpiresAt == 0 {
		c.ExpiresAt = t0.Add(time.Hour).Unix()
	}
	tok, err := auth.Mint(key, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestMintAndVerify(t *testing.T) {
	v := verifier(t, secret)
	tok := mint(t, secret, auth.Claims{Subject: "alice@example.com", Grants: []string{"publish", "view"}, Room: "concert", IssuedAt: t0.Unix()})
	p, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	want := auth.Principal{Subject: "alice@example.com", Grants: auth.GrantPublish | auth.GrantView, Room: "concert",
		ValidUntil: t0.Add(time.Hour + auth.DefaultLeeway)}
	if p != want {
		t.Fatalf("principal %+v, want %+v", p, want)
	}
	if !p.CanPublish("concert") || p.CanPublish("other") || !p.CanView("concert") || p.CanView("other") || p.IsAdmin() {
		t.Errorf("room scoping of %+v is wrong", p)
	}
	admin, err := v.Verify(mint(t, secret, auth.Claims{Subject: "ops", Grants: []string{"admin"}}))
	if err != nil || !admin.IsAdmin() || admin.CanPublish("x") || admin.CanView("x") {
		t.Errorf("admin token: %+v, %v", admin, err)
	}
	any, err := v.Verify(signed(t, secret, `{"sub":"bob","grants":["publish","bogus"],"exp":1767229200}`))
	if err != nil || !any.CanPublish("x") || !any.CanPublish("y") || any.CanView("x") {
		t.Errorf("unscoped publish token (unknown grant ignored): %+v, %v", any, err)
	}
}

// Every way a token can be wrong is refused, with the reason.
func TestVerifyRefuses(t *testing.T) {
	v := verifier(t, secret)
	good := mint(t, secret, auth.Claims{Subject: "alice", Grants: []string{"publish"}})
	h, p, s := split(good)
	enc := base64.RawURLEncoding.EncodeToString
	forgedPayload := enc([]byte(`{"sub":"mallory","grants":["admin"],"exp":1767229200}`))
	cases := []struct {
		name  string
		token string
		want  error
	}{
		{"empty", "", auth.ErrNoToken},
		{"not a JWT", "stream-key-123", auth.ErrMalformed},
		{"two parts", h + "." + p, auth.ErrMalformed},
		{"four parts", good + ".x", auth.ErrMalformed},
		{"bad base64 header", "!!!." + p + "." + s, auth.ErrMalformed},
		{"bad base64 signature", h + "." + p + ".***", auth.ErrMalformed},
		{"too long", strings.Repeat("a", auth.MaxTokenBytes+1), auth.ErrMalformed},
		{"alg none", enc([]byte(`{"alg":"none"}`)) + "." + p + ".", auth.ErrMalformed},
		{"alg RS256", enc([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + p + "." + s, auth.ErrMalformed},
		{"crit", enc([]byte(`{"alg":"HS256","crit":["exp"]}`)) + "." + p + "." + s, auth.ErrMalformed},
		{"forged payload", h + "." + forgedPayload + "." + s, auth.ErrBadSignature},
		{"no signature", h + "." + p + ".", auth.ErrBadSignature},
		{"wrong secret", mint(t, other, auth.Claims{Subject: "alice", Grants: []string{"publish"}}), auth.ErrBadSignature},
		{"expired", mint(t, secret, auth.Claims{Subject: "alice", ExpiresAt: t0.Add(-time.Minute).Unix()}), auth.ErrExpired},
		{"not yet valid", mint(t, secret, auth.Claims{Subject: "alice", NotBefore: t0.Add(time.Minute).Unix()}), auth.ErrNotYetValid},
		{"no subject", signed(t, secret, `{"grants":["view"],"exp":1767229200}`), auth.ErrBadClaims},
		{"blank subject", signed(t, secret, `{"sub":"  ","exp":1767229200}`), auth.ErrBadClaims},
		{"no exp", signed(t, secret, `{"sub":"alice","grants":["view"]}`), auth.ErrBadClaims},
		{"exp not a number", signed(t, secret, `{"sub":"alice","exp":"soon"}`), auth.ErrMalformed},
		{"payload not JSON", signed(t, secret, `sub=alice`), auth.ErrMalformed},
	}
	for _, c := range cases {
		if p, err := v.Verify(c.token); !errors.Is(err, c.want) {
			t.Errorf("%s: got %+v, %v; want %v", c.name, p, err, c.want)
		}
	}
	// Within the leeway, an expiry just past is still accepted.
	if _, err := v.Verify(mint(t, secret, auth.Claims{Subject: "alice", ExpiresAt: t0.Add(-10 * time.Second).Unix()})); err != nil {
		t.Errorf("expired 10 s ago (leeway 30 s): %v", err)
	}
	if _, err := v.Verify(signed(t, secret, `{"sub":"alice","exp":1767229200.5}`)); err != nil {
		t.Errorf("fractional exp: %v", err)
	}
}

// Old secrets listed after the current one still verify (rotation).
func TestVerifyRotation(t *testing.T) {
	v := verifier(t, secret, other)
	for _, k := range [][]byte{secret, other} {
		if _, err := v.Verify(mint(t, k, auth.Claims{Subject: "a", Grants: []string{"view"}})); err != nil {
			t.Errorf("key %q: %v", k[:4], err)
		}
	}
	keys := auth.ParseKeys([]byte("# current\n" + string(secret) + "\n\n  " + string(other) + "  \n"))
	if len(keys) != 2 || string(keys[0]) != string(secret) || string(keys[1]) != string(other) {
		t.Errorf("ParseKeys: %q", keys)
	}
	if _, err := auth.NewVerifier([][]byte{[]byte("short")}); err == nil {
		t.Error("a 5-byte secret was accepted")
	}
	if _, err := auth.NewVerifier(nil); err == nil {
		t.Error("no secret was accepted")
	}
}

func TestMintRefuses(t *testing.T) {
	for _, c := range []auth.Claims{
		{Grants: []string{"view"}, ExpiresAt: 1},
		{Subject: "a", Grants: []string{"view"}},
		{Subject: "a", Grants: []string{"root"}, ExpiresAt: 1},
	} {
		if tok, err := auth.Mint(secret, c); err == nil {
			t.Errorf("Mint(%+v) = %q, want an error", c, tok)
		}
	}
}

func TestAuthenticator(t *testing.T) {
	open := auth.NewAuthenticator(nil)
	p, err := open.Authenticate("whatever", "bob@example.com")
	if err != nil || p != auth.Trusted("bob@example.com") || !open.Open() || !open.Admin(p) {
		t.Errorf("trusted-header mode: %+v, %v", p, err)
	}
	if !p.CanPublish("any") || !p.CanView("any") || p.IsAdmin() {
		t.Errorf("trusted principal %+v: want publish and view anywhere, not admin", p)
	}
	on := auth.NewAuthenticator(verifier(t, secret))
	if _, err := on.Authenticate("", "bob@example.com"); !errors.Is(err, auth.ErrNoToken) {
		t.Errorf("no token with tokens on: %v", err)
	}
	p, err = on.Authenticate(mint(t, secret, auth.Claims{Subject: "carol", Grants: []string{"view"}}), "bob@example.com")
	if err != nil || p.Subject != "carol" || on.Admin(p) {
		t.Errorf("tokens on: %+v, %v (the email header must be ignored; no admin)", p, err)
	}

	for _, c := range []struct{ header, query, want string }{
		{"Bearer abc", "", "abc"},
		{"bearer  abc ", "q", "abc"},
		{"Basic abc", "q", "q"},
		{"", " q ", "q"},
		{"", "", ""},
	} {
		if got := auth.TokenFrom(c.header, c.query); got != c.want {
			t.Errorf("TokenFrom(%q, %q) = %q, want %q", c.header, c.query, got, c.want)
		}
	}
}

func split(tok string) (string, string, string) {
	parts := strings.Split(tok, ".")
	return parts[0], parts[1], parts[2]
}

// signed signs a raw payload with HS256, independently of the package, to
// make tokens that Mint refuses to.
func signed(t *testing.T, key []byte, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	s := enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc([]byte(payload))
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return s + "." + enc(m.Sum(nil))
}

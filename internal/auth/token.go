package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Tokens are JWTs (RFC 7519) signed with HMAC-SHA256 (HS256, RFC 7518),
// verified here with the standard library rather than a JWT library: onair
// accepts exactly one algorithm and one claims shape, which is a page of
// code, and refusing everything else ("none", RS256 with an HMAC key,
// critical headers) is then a matter of saying so rather than of
// configuring a general-purpose parser correctly.
//
// The claims:
//
//	{"sub":"alice@example.com","grants":["publish","view"],"room":"concert",
//	 "iat":1767225600,"exp":1767229200}
//
// sub and exp are required; nbf is honoured; room is optional; unknown
// grant names grant nothing; other claims are ignored.

// MinSecretBytes is the shortest signing secret accepted: HS256 wants a
// key at least as long as its hash (RFC 7518, 3.2).
const MinSecretBytes = 32

// MaxTokenBytes bounds the tokens examined at all.
const MaxTokenBytes = 4096

// DefaultLeeway is the clock skew allowed on exp and nbf.
const DefaultLeeway = 30 * time.Second

// Why a token is refused. Wrapped errors say more.
var (
	ErrNoToken      = errors.New("no token: send Authorization: Bearer <token> (or ?token= on a WebSocket)")
	ErrMalformed    = errors.New("malformed token")
	ErrBadSignature = errors.New("token signature does not verify")
	ErrExpired      = errors.New("token expired")
	ErrNotYetValid  = errors.New("token not valid yet")
	ErrBadClaims    = errors.New("token claims not acceptable")
)

// Claims are what a token says.
type Claims struct {
	Subject   string   `json:"sub"`
	Grants    []string `json:"grants"`
	Room      string   `json:"room,omitempty"`
	IssuedAt  int64    `json:"iat,omitempty"`
	NotBefore int64    `json:"nbf,omitempty"`
	ExpiresAt int64    `json:"exp"`
}

// Verifier checks tokens against one or more secrets: the first is the
// current one, the others are still accepted (key rotation).
type Verifier struct {
	keys   [][]byte
	leeway time.Duration
	now    func() time.Time
}

// NewVerifier returns a verifier of tokens signed with any of keys.
func NewVerifier(keys [][]byte) (*Verifier, error) {
	if len(keys) == 0 {
		return nil, errors.New("no signing secret")
	}
	for i, k := range keys {
		if len(k) < MinSecretBytes {
			return nil, fmt.Errorf("signing secret %d is %d bytes: at least %d are needed (e.g. openssl rand -hex 32)", i+1, len(k), MinSecretBytes)
		}
	}
	return &Verifier{keys: keys, leeway: DefaultLeeway, now: time.Now}, nil
}

// WithClock returns a copy of v that reads the time from now (tests).
func (v *Verifier) WithClock(now func() time.Time) *Verifier {
	c := *v
	c.now = now
	return &c
}

// b64 decodes strictly: one encoding per token, no malleable padding bits.
var b64 = base64.RawURLEncoding.Strict()

// jwtHeader is a token's JOSE header.
type jwtHeader struct {
	Alg  string   `json:"alg"`
	Typ  string   `json:"typ,omitempty"`
	Crit []string `json:"crit,omitempty"`
}

// jwtClaims is a token's payload as read: numbers may be fractional
// (NumericDate), and missing ones must be told from zero.
type jwtClaims struct {
	Sub    *string      `json:"sub"`
	Grants []string     `json:"grants"`
	Room   string       `json:"room"`
	Exp    *json.Number `json:"exp"`
	Nbf    *json.Number `json:"nbf"`
}

// Verify checks a token's signature and times and returns its principal.
func (v *Verifier) Verify(token string) (Principal, error) {
	if token == "" {
		return Principal{}, ErrNoToken
	}
	if len(token) > MaxTokenBytes {
		return Principal{}, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxTokenBytes)
	}
	h64, rest, ok1 := strings.Cut(token, ".")
	p64, s64, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(s64, ".") {
		return Principal{}, fmt.Errorf("%w: not three dot-separated parts", ErrMalformed)
	}
	var hdr jwtHeader
	if err := decodePart(h64, &hdr); err != nil {
		return Principal{}, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	if hdr.Alg != "HS256" {
		return Principal{}, fmt.Errorf("%w: algorithm %q (only HS256 is accepted)", ErrMalformed, hdr.Alg)
	}
	if hdr.Typ != "" && !strings.EqualFold(hdr.Typ, "JWT") {
		return Principal{}, fmt.Errorf("%w: type %q", ErrMalformed, hdr.Typ)
	}
	if len(hdr.Crit) > 0 {
		return Principal{}, fmt.Errorf("%w: critical header parameters %q are not understood", ErrMalformed, hdr.Crit)
	}
	sig, err := b64.DecodeString(s64)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: signature: %v", ErrMalformed, err)
	}
	signed := token[:len(h64)+1+len(p64)]
	verified := false
	for _, k := range v.keys {
		if hmac.Equal(sig, sign(k, signed)) {
			verified = true
			break
		}
	}
	if !verified {
		return Principal{}, ErrBadSignature
	}
	var c jwtClaims
	if err := decodePart(p64, &c); err != nil {
		return Principal{}, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	if c.Sub == nil || strings.TrimSpace(*c.Sub) == "" {
		return Principal{}, fmt.Errorf("%w: no sub (the user's identity)", ErrBadClaims)
	}
	now := v.now()
	exp, err := numericDate(c.Exp)
	if err != nil || c.Exp == nil {
		return Principal{}, fmt.Errorf("%w: exp is required (a NumericDate)", ErrBadClaims)
	}
	if now.After(exp.Add(v.leeway)) {
		return Principal{}, fmt.Errorf("%w at %s", ErrExpired, exp.UTC().Format(time.RFC3339))
	}
	if c.Nbf != nil {
		nbf, err := numericDate(c.Nbf)
		if err != nil {
			return Principal{}, fmt.Errorf("%w: nbf is not a NumericDate", ErrBadClaims)
		}
		if now.Add(v.leeway).Before(nbf) {
			return Principal{}, fmt.Errorf("%w before %s", ErrNotYetValid, nbf.UTC().Format(time.RFC3339))
		}
	}
	p := Principal{Subject: *c.Sub, Room: c.Room, ValidUntil: exp.Add(v.leeway)}
	for _, name := range c.Grants {
		if g, ok := ParseGrant(name); ok {
			p.Grants |= g
		}
	}
	return p, nil
}

// Mint signs claims with key.
func Mint(key []byte, c Claims) (string, error) {
	if strings.TrimSpace(c.Subject) == "" {
		return "", errors.New("a token needs a subject")
	}
	if c.ExpiresAt == 0 {
		return "", errors.New("a token needs an expiry")
	}
	for _, g := range c.Grants {
		if _, ok := ParseGrant(g); !ok {
			return "", fmt.Errorf("unknown grant %q (publish, view or admin)", g)
		}
	}
	if c.Grants == nil {
		c.Grants = []string{}
	}
	hdr, err := json.Marshal(jwtHeader{Alg: "HS256", Typ: "JWT"})
	if err != nil {
		return "", err
	}
	body, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	signed := b64.EncodeToString(hdr) + "." + b64.EncodeToString(body)
	return signed + "." + b64.EncodeToString(sign(key, signed)), nil
}

func sign(key []byte, signed string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(signed))
	return m.Sum(nil)
}

func decodePart(s string, v any) error {
	b, err := b64.DecodeString(s)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// numericDate reads a JWT NumericDate (seconds since the epoch, possibly
// fractional).
func numericDate(n *json.Number) (time.Time, error) {
	if n == nil {
		return time.Time{}, nil
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1<<40 {
		return time.Time{}, fmt.Errorf("not a NumericDate: %s", n.String())
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), nil
}

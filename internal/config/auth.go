package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/onair-live/onair/internal/auth"
)

// Auth is who may do what. With a signing secret, every request needs a
// token (JWT, HS256) and the email header is ignored; without one, onair
// trusts the email header (trusted-header mode).
type Auth struct {
	// AuthSecret signs and verifies tokens; AuthSecretFile names a file of
	// secrets, one a line, the first current and the others still accepted
	// (rotation). At most one of them.
	AuthSecret     string
	AuthSecretFile string
	// AuthKeys are the secrets read from either, the current one first;
	// none means trusted-header mode.
	AuthKeys [][]byte

	// AllowedOrigins are the browser origins that may call the API and open
	// the WebSocket (host patterns such as app.example.com, *.example.com,
	// or https://app.example.com); "*" (the default) allows any.
	AllowedOrigins []string
}

func (a *Auth) register(fs *flag.FlagSet) *string {
	fs.StringVar(&a.AuthSecret, "auth-secret", "", "secret that signs tokens: every request then needs one (default: off, the email header is trusted); prefer ONAIR_AUTH_SECRET to a flag, which others can see in ps")
	fs.StringVar(&a.AuthSecretFile, "auth-secret-file", "", "file of token secrets, one a line: the first signs, all verify (rotation)")
	return fs.String("allowed-origins", "*", "comma-separated browser origins allowed to call the API and open the WebSocket: host patterns (app.example.com, *.example.com) or scheme://host; * for any")
}

// load reads the secrets and the origins, and rejects what cannot work.
func (a *Auth) load(origins string, readFile func(string) ([]byte, error)) error {
	a.AllowedOrigins = splitList(origins)
	for _, o := range a.AllowedOrigins {
		if strings.ContainsAny(o, "/") && !strings.Contains(o, "://") {
			return fmt.Errorf("-allowed-origins: %q is neither a host pattern nor scheme://host", o)
		}
	}
	keys, err := loadKeys(a.AuthSecret, a.AuthSecretFile, "-auth-secret", "-auth-secret-file", readFile)
	if err != nil {
		return err
	}
	a.AuthKeys = keys
	return nil
}

// Tokens reports whether tokens are required (a secret is configured).
func (a Auth) Tokens() bool { return len(a.AuthKeys) > 0 }

func loadKeys(secret, file, secretFlag, fileFlag string, readFile func(string) ([]byte, error)) ([][]byte, error) {
	var keys [][]byte
	switch {
	case secret != "" && file != "":
		return nil, fmt.Errorf("%s and %s: give one of them", secretFlag, fileFlag)
	case secret != "":
		keys = [][]byte{[]byte(secret)}
	case file != "":
		data, err := readFile(file)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fileFlag, err)
		}
		if keys = auth.ParseKeys(data); len(keys) == 0 {
			return nil, fmt.Errorf("%s: %s holds no secret", fileFlag, file)
		}
	default:
		return nil, nil
	}
	for i, k := range keys {
		if len(k) < auth.MinSecretBytes {
			what := secretFlag
			if file != "" {
				what = fmt.Sprintf("%s: secret on line %d", fileFlag, i+1)
			}
			return nil, fmt.Errorf("%s is %d bytes: at least %d are needed (make one with: openssl rand -hex 32)", what, len(k), auth.MinSecretBytes)
		}
	}
	return keys, nil
}

// Token is what `onair token` mints.
type Token struct {
	Key     []byte // the current secret
	Subject string
	Grants  []string
	Room    string
	TTL     time.Duration
}

// LoadToken parses the arguments of `onair token` (without "token"). The
// secret is -secret or -secret-file, else ONAIR_AUTH_SECRET or
// ONAIR_AUTH_SECRET_FILE, as the server reads it.
func LoadToken(args []string, getenv func(string) string, usageOut io.Writer) (Token, error) {
	var (
		t                Token
		secret, file     string
		ttl              time.Duration
		fs               = flag.NewFlagSet("onair token", flag.ContinueOnError)
		grantList        []string
		secretFromEnvVar bool
	)
	fs.SetOutput(usageOut)
	fs.Usage = func() {
		fmt.Fprintln(usageOut, "usage: onair token -sub USER -grant publish|view|admin [-grant …] [-room ROOM] [-ttl 1h] [-secret S | -secret-file F]")
		fmt.Fprintln(usageOut, "Prints a token for USER. The secret defaults to ONAIR_AUTH_SECRET or ONAIR_AUTH_SECRET_FILE.")
		fs.PrintDefaults()
	}
	fs.StringVar(&secret, "secret", "", "signing secret (default: ONAIR_AUTH_SECRET); prefer the variable, a flag shows in ps")
	fs.StringVar(&file, "secret-file", "", "file of secrets, the first signs (default: ONAIR_AUTH_SECRET_FILE)")
	fs.StringVar(&t.Subject, "sub", "", "the user's identity (the protocol's email), required")
	fs.Func("grant", "publish, view or admin; repeat or separate with commas", func(v string) error {
		grantList = append(grantList, splitList(v)...)
		return nil
	})
	fs.StringVar(&t.Room, "room", "", "limit publish and view to this room (default: any room)")
	fs.DurationVar(&ttl, "ttl", time.Hour, "how long the token is valid")
	if err := fs.Parse(args); err != nil {
		return Token{}, err
	}
	if fs.NArg() > 0 {
		return Token{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if secret == "" && file == "" {
		secret, file = getenv("ONAIR_AUTH_SECRET"), getenv("ONAIR_AUTH_SECRET_FILE")
		secretFromEnvVar = true
	}
	secretFlag, fileFlag := "-secret", "-secret-file"
	if secretFromEnvVar {
		secretFlag, fileFlag = "ONAIR_AUTH_SECRET", "ONAIR_AUTH_SECRET_FILE"
	}
	keys, err := loadKeys(secret, file, secretFlag, fileFlag, os.ReadFile)
	if err != nil {
		return Token{}, err
	}
	if len(keys) == 0 {
		return Token{}, errors.New("no secret: give -secret or -secret-file, or set ONAIR_AUTH_SECRET")
	}
	if strings.TrimSpace(t.Subject) == "" {
		return Token{}, errors.New("-sub is required: the user the token is for")
	}
	if len(grantList) == 0 {
		return Token{}, errors.New("-grant is required: publish, view or admin")
	}
	for _, g := range grantList {
		if _, ok := auth.ParseGrant(g); !ok {
			return Token{}, fmt.Errorf("-grant: %q is not publish, view or admin", g)
		}
	}
	if ttl <= 0 {
		return Token{}, errors.New("-ttl must be positive")
	}
	t.Key, t.Grants, t.TTL = keys[0], grantList, ttl
	return t, nil
}

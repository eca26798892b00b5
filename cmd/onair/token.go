package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/onair-live/onair/internal/auth"
	"github.com/onair-live/onair/internal/config"
)

// mintToken is `onair token`: it prints a token for operators and tests,
// signed with the server's current secret.
func mintToken(args []string, getenv func(string) string, now time.Time, stdout, stderr io.Writer) int {
	t, err := config.LoadToken(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "onair token:", err)
		return 2
	}
	tok, err := auth.Mint(t.Key, auth.Claims{Subject: t.Subject, Grants: t.Grants, Room: t.Room,
		IssuedAt: now.Unix(), ExpiresAt: now.Add(t.TTL).Unix()})
	if err != nil {
		fmt.Fprintln(stderr, "onair token:", err)
		return 2
	}
	fmt.Fprintln(stdout, tok)
	return 0
}

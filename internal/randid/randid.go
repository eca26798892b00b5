// Package randid makes random identifiers: session and endpoint ids that are
// unguessable, so usable in URLs, and short suffixes that tell one process
// or one test run from another. It owns nothing and keeps no state.
package randid

import (
	"crypto/rand"
	"encoding/hex"
)

// New returns 128 random bits in hex (32 characters).
func New() string { return Hex(16) }

// Hex returns n random bytes in hex (2n characters).
func Hex(n int) string {
	b := make([]byte, n)
	// crypto/rand.Read never fails: on a broken system it ends the program.
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

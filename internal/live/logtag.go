package live

import (
	"crypto/sha256"
	"encoding/hex"
)

// Tag names a session in logs: the first 8 hex digits of the SHA-256 of
// its id. A WHIP or WHEP session's id is the secret part of its URL (in
// trusted mode the only credential for PATCH and DELETE), so logs never
// carry it; the tag tells sessions apart and cannot be turned back into
// the id. Tokens, stream keys and webhook secrets are not logged at all.
func Tag(sessionID string) string {
	h := sha256.Sum256([]byte(sessionID))
	return hex.EncodeToString(h[:4])
}

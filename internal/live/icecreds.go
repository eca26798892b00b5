package live

// checkICECredentials refuses ICE credentials that RFC 8445 (section 5.3)
// and RFC 8839 do not allow: a username fragment of 4 to 256 ice-chars and
// a password of 22 to 256 (ice-char: ALPHA / DIGIT / "+" / "/"). A short
// password is guessable, and a peer that sends one is not an ICE agent.
func checkICECredentials(ufrag, pwd string) error {
	if !iceChars(ufrag, 4) {
		return ErrBadRequest.With("a=ice-ufrag must be 4 to 256 characters of A-Z, a-z, 0-9, + and / (RFC 8445)")
	}
	if !iceChars(pwd, 22) {
		return ErrBadRequest.With("a=ice-pwd must be 22 to 256 characters of A-Z, a-z, 0-9, + and / (RFC 8445)")
	}
	return nil
}

func iceChars(s string, least int) bool {
	if len(s) < least || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}

package whip

import (
	"strings"
	"testing"
)

// FuzzParseFrag: no trickle-ice-sdpfrag body (a client's PATCH) makes the
// parser panic; what it accepts has at most maxFragCandidates candidates,
// each a candidate line with its media section named. (localFrag and
// iceUfrag read only the server's own descriptions, not client input.)
func FuzzParseFrag(f *testing.F) {
	for _, s := range []string{
		"a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\na=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1\r\na=end-of-candidates\r\n",
		"a=candidate:1 1 udp 1 127.0.0.1 9 typ host\n",
		"m=video 9 RTP/AVP 0\na=mid:v\na=candidate:1 1 udp 1 ::1 9 typ host\nm=audio 9 RTP/AVP 0\na=candidate:2 1 udp 1 ::1 9 typ host\n",
		"a=ice-ufrag:x\na=ice-pwd:y\n",
		"a=group:BUNDLE 0\nc=IN IP4 0.0.0.0\na=ice-options:trickle\n",
		"",
		"garbage",
		"a=candidate:" + strings.Repeat("x", 100),
		strings.Repeat("a=candidate:1 1 udp 1 127.0.0.1 9 typ host\n", maxFragCandidates+1),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		frag, err := parseFrag(body)
		if err != nil {
			return
		}
		if len(frag.candidates) > maxFragCandidates {
			t.Fatalf("%d candidates accepted", len(frag.candidates))
		}
		if frag.ufrag == "" && frag.pwd == "" && len(frag.candidates) == 0 {
			t.Fatal("an empty sdpfrag was accepted")
		}
		for _, c := range frag.candidates {
			if !strings.HasPrefix(c.Candidate, "candidate:") || c.SDPMid == nil || c.SDPMLineIndex == nil {
				t.Fatalf("candidate %+v", c)
			}
		}
	})
}

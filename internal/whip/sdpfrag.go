package whip

import (
	"errors"
	"fmt"
	"strings"

	"github.com/onair-live/onair/internal/media"
)

// maxFragCandidates bounds the candidates of one PATCH.
const maxFragCandidates = 64

// sdpFrag is a trickle-ice-sdpfrag body (RFC 8840): ICE credentials and
// candidates, grouped by media section.
type sdpFrag struct {
	ufrag, pwd string
	candidates []media.Candidate
}

// parseFrag reads an sdpfrag. Candidates before any m= line belong to the
// first media section (mid "0", index 0).
func parseFrag(body string) (sdpFrag, error) {
	var f sdpFrag
	mid := ""
	index := -1
	for _, raw := range strings.Split(body, "\n") {
		line := strings.TrimSpace(raw)
		if line == "" {
			continue
		}
		switch {
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			f.ufrag = strings.TrimPrefix(line, "a=ice-ufrag:")
		case strings.HasPrefix(line, "a=ice-pwd:"):
			f.pwd = strings.TrimPrefix(line, "a=ice-pwd:")
		case strings.HasPrefix(line, "m="):
			index++
			mid = ""
		case strings.HasPrefix(line, "a=mid:"):
			mid = strings.TrimPrefix(line, "a=mid:")
		case strings.HasPrefix(line, "a=candidate:"):
			if len(f.candidates) >= maxFragCandidates {
				return sdpFrag{}, fmt.Errorf("more than %d candidates in one request", maxFragCandidates)
			}
			c := media.Candidate{Candidate: strings.TrimPrefix(line, "a=")}
			m, i := mid, index
			if i < 0 {
				i = 0
			}
			if m == "" {
				m = fmt.Sprint(i)
			}
			idx := uint16(i)
			c.SDPMid, c.SDPMLineIndex = &m, &idx
			if f.ufrag != "" {
				u := f.ufrag
				c.UsernameFragment = &u
			}
			f.candidates = append(f.candidates, c)
		case strings.HasPrefix(line, "a=end-of-candidates"), strings.HasPrefix(line, "a=group:"),
			strings.HasPrefix(line, "a=ice-options:"), strings.HasPrefix(line, "c="):
		case strings.HasPrefix(line, "a="):
		default:
			return sdpFrag{}, fmt.Errorf("not an sdpfrag line: %.40q", line)
		}
	}
	if f.ufrag == "" && f.pwd == "" && len(f.candidates) == 0 {
		return sdpFrag{}, errors.New("the sdpfrag has no candidate and no ICE credentials")
	}
	return f, nil
}

// iceUfrag returns the first ice-ufrag of an SDP.
func iceUfrag(sdp string) string {
	for _, l := range strings.Split(sdp, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "a=ice-ufrag:"); ok {
			return v
		}
	}
	return ""
}

// localFrag turns the server's local description into the sdpfrag of an ICE
// restart answer: credentials, then each media section's candidates.
func localFrag(sdp string) string {
	var b strings.Builder
	ufragDone, pwdDone := false, false
	var sections []string
	var cands [][]string
	for _, raw := range strings.Split(sdp, "\n") {
		l := strings.TrimSpace(raw)
		switch {
		case strings.HasPrefix(l, "a=ice-ufrag:") && !ufragDone:
			b.WriteString(l + "\r\n")
			ufragDone = true
		case strings.HasPrefix(l, "a=ice-pwd:") && !pwdDone:
			b.WriteString(l + "\r\n")
			pwdDone = true
		case strings.HasPrefix(l, "m="):
			sections = append(sections, l)
			cands = append(cands, nil)
		case strings.HasPrefix(l, "a=mid:") && len(sections) > 0:
			sections[len(sections)-1] += "\r\n" + l
		case strings.HasPrefix(l, "a=candidate:") && len(sections) > 0:
			cands[len(cands)-1] = append(cands[len(cands)-1], l)
		}
	}
	for i, s := range sections {
		if len(cands[i]) == 0 && i > 0 {
			continue
		}
		b.WriteString(s + "\r\n")
		for _, c := range cands[i] {
			b.WriteString(c + "\r\n")
		}
		if i == 0 {
			b.WriteString("a=end-of-candidates\r\n")
		}
	}
	return b.String()
}

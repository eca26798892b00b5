package sfu

import "strings"

// bundleCandidates makes every accepted media section of a gathered answer
// carry the local candidates. pion writes them into the first section only,
// which may be a rejected one (port 0: a viewer offered audio to a broadcast
// without it); a client that reads candidates from the sections it uses,
// such as a WHEP player, would then find none and connect only late, through
// its own checks.
func bundleCandidates(sdp string) string {
	lines := strings.Split(strings.TrimRight(sdp, "\r\n"), "\r\n")
	var cands []string
	end := false
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "a=candidate:"):
			if !contains(cands, l) {
				cands = append(cands, l)
			}
		case l == "a=end-of-candidates":
			end = true
		}
	}
	if len(cands) == 0 {
		return sdp
	}
	type section struct {
		start, end int // lines[start] is its m= line; end is exclusive
		accepted   bool
		has        bool
	}
	var secs []section
	for i, l := range lines {
		if strings.HasPrefix(l, "m=") {
			if n := len(secs); n > 0 {
				secs[n-1].end = i
			}
			f := strings.Fields(l)
			secs = append(secs, section{start: i, accepted: len(f) > 1 && f[1] != "0"})
		}
		if n := len(secs); n > 0 && strings.HasPrefix(l, "a=candidate:") {
			secs[n-1].has = true
		}
	}
	if len(secs) == 0 {
		return sdp
	}
	secs[len(secs)-1].end = len(lines)
	out := make([]string, 0, len(lines)+len(secs)*(len(cands)+1))
	out = append(out, lines[:secs[0].start]...)
	for _, s := range secs {
		out = append(out, lines[s.start:s.end]...)
		if s.accepted && !s.has {
			out = append(out, cands...)
			if end {
				out = append(out, "a=end-of-candidates")
			}
		}
	}
	return strings.Join(out, "\r\n") + "\r\n"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

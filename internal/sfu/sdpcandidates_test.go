package sfu

import (
	"strings"
	"testing"
)

func TestBundleCandidatesFillsAcceptedSections(t *testing.T) {
	in := strings.Join([]string{
		"v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0", "a=group:BUNDLE 1",
		"m=audio 0 UDP/TLS/RTP/SAVPF 0", "a=mid:0",
		"a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host", "a=end-of-candidates",
		"m=video 9 UDP/TLS/RTP/SAVPF 96", "a=mid:1", "a=rtpmap:96 VP8/90000",
	}, "\r\n") + "\r\n"
	out := bundleCandidates(in)
	video := out[strings.Index(out, "m=video"):]
	if !strings.Contains(video, "a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n") ||
		!strings.Contains(video, "a=end-of-candidates") {
		t.Fatalf("the accepted video section has no candidates:\n%s", out)
	}
	if strings.Count(out, "a=candidate:") != 2 {
		t.Fatalf("candidates duplicated or lost:\n%s", out)
	}
	if bundleCandidates(out) != out {
		t.Fatal("not idempotent")
	}
}

func TestBundleCandidatesLeavesCompleteAnswersAlone(t *testing.T) {
	in := "v=0\r\nm=video 9 UDP 96\r\na=candidate:1 1 udp 1 127.0.0.1 5 typ host\r\n"
	if got := bundleCandidates(in); got != in {
		t.Fatalf("changed a complete answer:\n%q", got)
	}
	if got := bundleCandidates("v=0\r\nm=video 9 UDP 96\r\n"); got != "v=0\r\nm=video 9 UDP 96\r\n" {
		t.Fatalf("changed an answer without candidates: %q", got)
	}
}

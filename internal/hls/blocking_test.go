package hls

import "testing"

// A playlist as gohlslib writes it: segment 8 complete with 3 parts listed,
// segment 9 open with 2.
const llPlaylist = `#EXTM3U
#EXT-X-MEDIA-SEQUENCE:7
#EXTINF:1.00000,
seg7.mp4
#EXT-X-PART:DURATION=0.2,URI="part0.mp4"
#EXT-X-PART:DURATION=0.2,URI="part1.mp4"
#EXT-X-PART:DURATION=0.2,URI="part2.mp4"
#EXTINF:0.60000,
seg8.mp4
#EXT-X-PART:DURATION=0.2,URI="part3.mp4"
#EXT-X-PART:DURATION=0.2,URI="part4.mp4"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part5.mp4"
`

// A request for a part past a segment's end is one for part 0 of the next
// segment (the LL-HLS rule gohlslib misses when that segment is open).
func TestPartStateResolve(t *testing.T) {
	s := parsePartState([]byte(llPlaylist))
	if s.open != 9 || s.openParts != 2 || s.parts[8] != 3 {
		t.Fatalf("parsed %+v, want segment 9 open with 2 parts, 8 with 3", s)
	}
	cases := []struct {
		msn, part    int
		wantM, wantP int
		wantOK       bool
		why          string
	}{
		{8, 1, 8, 1, true, "a part of a complete segment"},
		{8, 3, 9, 0, true, "past the end of segment 8: part 0 of 9, which exists"},
		{9, 1, 9, 1, true, "a part of the open segment"},
		{9, 2, 9, 2, false, "the next part of the open segment: wait"},
		{7, 5, 7, 5, true, "a segment whose parts are no longer listed: gohlslib answers"},
		{10, 0, 10, 0, false, "the next segment: wait"},
		{12, 0, 12, 0, true, "too far ahead: gohlslib answers 400"},
	}
	for _, c := range cases {
		m, p, ok := s.resolve(c.msn, c.part)
		if m != c.wantM || p != c.wantP || ok != c.wantOK {
			t.Errorf("%s: resolve(%d, %d) = %d, %d, %v; want %d, %d, %v", c.why, c.msn, c.part, m, p, ok, c.wantM, c.wantP, c.wantOK)
		}
	}
}

package loadtest

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// udpDrops returns how many packets the kernel dropped, since they were
// opened, at the UDP sockets this process holds: packets that reached the
// tool but overflowed a socket's receive buffer before it read them. Loss
// the viewers count beyond these happened before the tool (at the server).
func udpDrops() (uint64, bool) {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, false
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(target, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] = true
		}
	}
	var total uint64
	ok := false
	for _, table := range []string{"/proc/self/net/udp", "/proc/self/net/udp6"} {
		f, err := os.Open(table)
		if err != nil {
			continue
		}
		ok = true
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
			fields := strings.Fields(sc.Text())
			if len(fields) < 13 || !inodes[fields[9]] {
				continue
			}
			if d, err := strconv.ParseUint(fields[len(fields)-1], 10, 64); err == nil {
				total += d
			}
		}
		f.Close()
	}
	return total, ok
}

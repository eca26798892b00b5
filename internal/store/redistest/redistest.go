// Package redistest runs a real redis-server for tests: on a free 127.0.0.1
// port, without persistence, stopped when the test ends. Tests can stop it
// and start it again on the same port (empty, as a Redis without persistence
// restarts) to see what onair does while Redis is away.
//
// The binary is ONAIR_REDIS_SERVER if set, else redis-server on PATH. When it
// is missing the test fails if CI is set, and is skipped otherwise. It is used
// only by tests; it owns the redis-server processes it starts and nothing else,
// and starts no goroutine (so that tests counting goroutines may stop and
// restart Redis at any point).
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Server is one redis-server of a test.
type Server struct {
	Addr string // 127.0.0.1:port
	URL  string // redis://127.0.0.1:port/0

	t      testing.TB
	bin    string
	dir    string
	mu     sync.Mutex
	cmd    *exec.Cmd
	runs   int // redis-server processes started, for their log files
	client *redis.Client
}

// Binary returns the redis-server to run, or fails or skips t as the package
// doc says.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("ONAIR_REDIS_SERVER"); p != "" {
		return p
	}
	p, err := exec.LookPath("redis-server")
	if err == nil {
		return p
	}
	msg := "redis-server not found (install it with: apt-get install redis-server, or set ONAIR_REDIS_SERVER)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Start starts a redis-server for t and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, bin: Binary(t), dir: t.TempDir()}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var port int
		if port, err = freePort(); err != nil {
			continue
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("redis-server: %v", err)
	}
	s.URL = "redis://" + s.Addr + "/0"
	s.client = redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}})
	t.Cleanup(func() {
		_ = s.client.Close()
		s.Stop()
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(s.dir, "redis-*.log"))
			for _, f := range logs {
				b, _ := os.ReadFile(f)
				t.Logf("%s:\n%s", filepath.Base(f), b)
			}
		}
	})
	return s
}

// Client is a client of the server, for tests to look at or change keys.
func (s *Server) Client() *redis.Client { return s.client }

// Stop kills the server and waits for it to exit. Idempotent.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}

// Restart starts the server again on the same port after Stop, empty.
func (s *Server) Restart() {
	s.t.Helper()
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err = s.start(); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // the port may linger a moment
	}
	if err != nil {
		s.t.Fatalf("redis-server restart: %v", err)
	}
}

// Keys lists the server's keys (for tests: KEYS is fine on a test server).
func (s *Server) Keys(ctx context.Context) ([]string, error) {
	return s.client.Keys(ctx, "*").Result()
}

// start runs redis-server on s.Addr and waits until it answers PING. Its
// output goes to a file, so that no goroutine copies it.
func (s *Server) start() error {
	_, port, _ := net.SplitHostPort(s.Addr)
	s.runs++
	out, err := os.Create(filepath.Join(s.dir, fmt.Sprintf("redis-%d.log", s.runs)))
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command(s.bin, "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--daemonize", "no", "--loglevel", "warning")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return err
	}
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: time.Second,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}})
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var ws syscall.WaitStatus
		if pid, _ := syscall.Wait4(cmd.Process.Pid, &ws, syscall.WNOHANG, nil); pid == cmd.Process.Pid {
			b, _ := os.ReadFile(out.Name())
			return fmt.Errorf("redis-server exited at start (%v): %s", ws, b)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return fmt.Errorf("redis-server on %s did not answer: %v", s.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

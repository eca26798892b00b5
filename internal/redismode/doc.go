// Package redismode holds the end-to-end tests of onair with its state in
// Redis: in one process (Redis stopped and restarted under a live broadcast,
// a room record deleted behind onair's back, Redis down at start) and across
// real onair processes built from cmd/onair (kill -9 and restart, two
// processes on one Redis with one killed). Every test runs a real
// redis-server (internal/store/redistest) and real pion peers
// (internal/testpeer) over loopback.
//
// It has no code of its own besides this comment: it is a place for tests
// that span the whole program, like internal/app's.
package redismode

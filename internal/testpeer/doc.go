// Package testpeer drives a real onair from tests, over loopback and without
// mocks: it starts the server (StartServer), calls its REST API (Client),
// speaks its WebSocket protocol (WS), and runs pion peers that publish
// (Publisher) and receive (ViewerPeer) synthetic media whose every byte can be
// checked. Presenter and Viewer put these together the way a real client
// does. CheckGoroutines fails a test that leaves goroutines behind.
//
// It is used only by tests: no production code imports it. It owns the
// clients it creates and nothing of the server; it reads the server's state
// only through app.App's exported methods and its public API.
package testpeer

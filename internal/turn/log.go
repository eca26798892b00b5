package turn

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// pionLogs sends pion's TURN logs to slog at debug level: pion logs every
// malformed packet and failed handshake from the Internet as an error,
// while what an operator needs (refusals, allocations) the server logs
// itself.
type pionLogs struct{ log *slog.Logger }

func (p pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{p.log.With("pion", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) debugf(format string, args ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug(fmt.Sprintf(format, args...))
	}
}

func (l pionLogger) Trace(string)                      {}
func (l pionLogger) Tracef(string, ...any)             {}
func (l pionLogger) Debug(msg string)                  { l.log.Debug(msg) }
func (l pionLogger) Debugf(format string, args ...any) { l.debugf(format, args...) }
func (l pionLogger) Info(msg string)                   { l.log.Debug(msg) }
func (l pionLogger) Infof(format string, args ...any)  { l.debugf(format, args...) }
func (l pionLogger) Warn(msg string)                   { l.log.Debug(msg) }
func (l pionLogger) Warnf(format string, args ...any)  { l.debugf(format, args...) }
func (l pionLogger) Error(msg string)                  { l.log.Debug(msg) }
func (l pionLogger) Errorf(format string, args ...any) { l.debugf(format, args...) }

package provutil

import (
	"io"
	"os"
	"time"
)

// The engine starts every plugin with a pipe on its stdin (cmd.StdinPipe() in newPlugin,
// sdk/go/common/resource/plugin/plugin.go of Pulumi v3.259.0), never writes to it and never
// closes it while the plugin is in use. When the engine process ends, however it ends (even by
// SIGKILL), the kernel closes the write end and the plugin reads EOF. Upstream plugins only
// notice a dead engine through a gRPC health check every 5 minutes (rpcutil.Healthcheck); the
// EOF arrives within milliseconds.

// engineGoneGrace bounds how long ExitWhenEngineGone waits for onGone before exiting anyway,
// so that a stuck clean-up cannot keep an orphaned plugin alive.
const engineGoneGrace = 10 * time.Second

// WatchEngine calls onGone once, from another goroutine, when stdin reaches EOF (or fails).
// It watches only when stdin is a pipe, as the engine sets it up, and returns whether it does:
// a plugin started by hand (from a terminal, or with stdin on /dev/null) has no engine to lose.
func WatchEngine(stdin *os.File, onGone func()) bool {
	info, err := stdin.Stat()
	if err != nil || info.Mode()&os.ModeNamedPipe == 0 {
		return false
	}
	go func() {
		// The engine sends nothing; anything that does arrive is discarded.
		_, _ = io.Copy(io.Discard, stdin)
		onGone()
	}()
	return true
}

// ExitWhenEngineGone makes this plugin exit as soon as the engine that started it is gone:
// it runs onGone (may be nil; e.g. stop the child processes this plugin started), for at most
// engineGoneGrace, then exits with status 0 (nobody is left to read it). It does nothing when
// stdin is not the engine's pipe (see WatchEngine).
func ExitWhenEngineGone(onGone func()) {
	WatchEngine(os.Stdin, func() {
		cleaned := make(chan struct{})
		go func() {
			defer close(cleaned)
			if onGone != nil {
				onGone()
			}
		}()
		select {
		case <-cleaned:
		case <-time.After(engineGoneGrace):
		}
		os.Exit(0)
	})
}

package provutil

import (
	"context"
	"sync"
)

// Work is what a provider is running for the engine right now (commands, copies). Upstream runs
// each command under its RPC's context, so when the engine's connection drops gRPC cancels the
// context and exec.CommandContext kills the command. A plugin that exits the moment the engine
// is gone (ExitWhenEngineGone) would race that cancellation; Serve calls StopAll first, so a
// running command is stopped the same way before the plugin exits.
type Work struct {
	stop    context.Context
	stopAll context.CancelFunc
	running sync.WaitGroup
}

// NewWork returns an empty Work.
func NewWork() *Work {
	stop, stopAll := context.WithCancel(context.Background())
	return &Work{stop: stop, stopAll: stopAll}
}

// Start registers one piece of work: the returned context ends with ctx or at StopAll, and done
// must be called when the work has finished. A nil Work (tests) tracks nothing.
func (w *Work) Start(ctx context.Context) (context.Context, func()) {
	if w == nil {
		return ctx, func() {}
	}
	w.running.Add(1)
	ctx, cancel := context.WithCancel(ctx)
	unlink := context.AfterFunc(w.stop, cancel)
	return ctx, func() {
		unlink()
		cancel()
		w.running.Done()
	}
}

// StopAll cancels every piece of work and waits until each has finished.
func (w *Work) StopAll() {
	w.stopAll()
	w.running.Wait()
}

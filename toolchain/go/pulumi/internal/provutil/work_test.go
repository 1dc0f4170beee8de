package provutil

import (
	"context"
	"os/exec"
	"testing"
	"time"
)

// StopAll is what runs when the engine is gone: a command started under Work is killed (as
// exec.CommandContext does when gRPC cancels the RPC's context upstream), and StopAll returns
// only after the command has finished.
func TestWorkStopAllStopsRunningCommands(t *testing.T) {
	work := NewWork()
	finished := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		ctx, done := work.Start(context.Background())
		defer done()
		cmd := exec.CommandContext(ctx, "sleep", "600")
		if err := cmd.Start(); err != nil {
			finished <- err
			return
		}
		close(started)
		finished <- cmd.Wait()
	}()
	<-started
	begun := time.Now()
	work.StopAll()
	select {
	case err := <-finished:
		if err == nil {
			t.Fatal("the command ended normally; want it killed")
		}
	default:
		t.Fatal("StopAll returned before the command finished")
	}
	if waited := time.Since(begun); waited > 5*time.Second {
		t.Fatalf("StopAll took %v", waited)
	}
}

// Work that ends on its own is released, and a nil Work (tests) tracks nothing.
func TestWorkDoneReleases(t *testing.T) {
	work := NewWork()
	_, done := work.Start(context.Background())
	done()
	work.StopAll() // must not wait for anything

	var none *Work
	ctx, done := none.Start(context.Background())
	done()
	if ctx.Err() != nil {
		t.Fatal("a nil Work must not cancel")
	}
}
